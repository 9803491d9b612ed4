package natsbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// AuthorizationConfig returns the authorization block of a nats-server configuration file that
// accepts users, each with its role's permissions: what an external NATS server needs to serve
// Gatehouse exactly as `gatehouse nats` does. Include it in the server's configuration (with
// TLS and JetStream), e.g. `include "gatehouse-authorization.conf"`.
func AuthorizationConfig(users []User) (string, error) {
	if err := ValidateUsers(users); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Gatehouse's NATS identities and their permissions, by role (gatehouse nats authorization).\n")
	b.WriteString("# Every subject a role does not list is refused; each role subscribes only to its own inbox.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range dedup(users) {
		pub, err := Publish(u.Role)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %s\n      permissions: {\n", u.Role, strconv.Quote(u.NKey))
		fmt.Fprintf(&b, "        publish: { allow: [%s] }\n", quoteAll(pub))
		fmt.Fprintf(&b, "        subscribe: { allow: [%s] }\n", quoteAll([]string{u.Role.InboxPrefix() + ".>"}))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

func quoteAll(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// RolePermissions is a role's permissions as JSON: for servers that authenticate with an
// operator's JWTs, what each role's user JWT must carry (nsc add user --allow-pub ... --allow-sub
// ...), and what the chart renders the authorization block of an external nats-server from.
type RolePermissions struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

// PermissionsJSON returns the permissions of every role as a JSON object keyed by role, ending
// with a newline.
func PermissionsJSON() ([]byte, error) {
	out := map[Role]RolePermissions{}
	for _, r := range Roles {
		pub, err := Publish(r)
		if err != nil {
			return nil, err
		}
		out[r] = RolePermissions{Publish: pub, Subscribe: []string{r.InboxPrefix() + ".>"}}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // subjects end in ">"
	enc.SetIndent("", "  ")
	err := enc.Encode(out)
	return b.Bytes(), err
}

// dedup drops repeated users, keeping the order.
func dedup(users []User) []User {
	seen := map[User]bool{}
	var out []User
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}
