package natsbus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"
	"sigs.k8s.io/yaml"
)

// SeedFile is the name of role's seed file in a keys directory (WriteKeys).
func SeedFile(role Role) string { return string(role) + ".nkey" }

// UsersFile is the name of the public keys' file in a keys directory (WriteKeys).
const UsersFile = "users.yaml"

// NewUser returns a new NKey user: its seed (secret, the component's --nats-nkey-file) and its
// public key (the server's).
func NewUser() (seed []byte, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, "", err
	}
	public, err = kp.PublicKey()
	return seed, public, err
}

// WriteKeys writes a new seed file (mode 0600) for each role into dir, and the users file
// with their public keys, which `gatehouse nats --users-file` reads. Existing seed files are
// kept, never overwritten: their public keys are listed.
func WriteKeys(dir string, roles []Role) ([]User, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var users []User
	for _, r := range roles {
		path := filepath.Join(dir, SeedFile(r))
		public, err := PublicKeyOfSeedFile(path)
		if errors.Is(err, os.ErrNotExist) {
			var seed []byte
			if seed, public, err = NewUser(); err == nil {
				err = writeNew(path, append(seed, '\n'))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("natsbus: %s: %w", path, err)
		}
		users = append(users, User{Role: r, NKey: public})
	}
	data, err := MarshalUsers(users)
	if err != nil {
		return nil, err
	}
	return users, os.WriteFile(filepath.Join(dir, UsersFile), data, 0o644)
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// PublicKeyOfSeedFile returns the public key of the NKey seed in path.
func PublicKeyOfSeedFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("not an NKey seed: %w", err)
	}
	return kp.PublicKey()
}

// usersDocument is the users file: for each role, the public keys it may connect with (more than
// one while a key is rotated).
type usersDocument map[Role][]string

// MarshalUsers returns the users file of users.
func MarshalUsers(users []User) ([]byte, error) {
	doc := usersDocument{}
	for _, u := range users {
		doc[u.Role] = append(doc[u.Role], u.NKey)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Public NKeys of Gatehouse's NATS identities, by role (gatehouse nats --users-file).\n"), out...), nil
}

// ParseUsers parses a users file: a map from role to a list of public keys.
func ParseUsers(data []byte) ([]User, error) {
	var doc usersDocument
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("natsbus: users file: %w", err)
	}
	var users []User
	for _, r := range Roles {
		for _, k := range doc[r] {
			users = append(users, User{Role: r, NKey: strings.TrimSpace(k)})
		}
	}
	for r := range doc {
		if !slices.Contains(Roles, r) {
			return nil, fmt.Errorf("natsbus: users file: unknown role %q", r)
		}
	}
	return users, ValidateUsers(users)
}

// ValidateUsers reports invalid users and a key given to two roles.
func ValidateUsers(users []User) error {
	var errs []error
	seen := map[string]Role{}
	for _, u := range users {
		if err := u.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if other, ok := seen[u.NKey]; ok && other != u.Role {
			errs = append(errs, fmt.Errorf("natsbus: the key %s is given to both %s and %s", u.NKey, other, u.Role))
		}
		seen[u.NKey] = u.Role
	}
	return errors.Join(errs...)
}
