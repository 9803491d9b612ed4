package masking

import "bytes"

// This file holds the context of a value: what role it plays in the Kubernetes object around
// it, and how the roles of its members and elements follow from it.

// role says what a value is, which decides how it is masked.
type role uint8

const (
	roleValue             role = iota // an ordinary value: keyword rules and detectors
	roleObject                        // the members of a Kubernetes object
	roleEmbedded                      // a value that holds a Kubernetes object
	roleTypeField                     // kind or apiVersion of an object
	roleMetadata                      // metadata of an object
	roleAnnotations                   // metadata.annotations
	roleAnnotation                    // an annotation value, or any value named like last-applied
	roleBinaryData                    // ConfigMap binaryData
	roleBinaryValue                   // a value of binaryData
	roleItems                         // items of a list
	roleRows                          // rows of a Table
	roleRow                           // one row of a Table
	roleTokenStatus                   // status of a TokenRequest
	roleTokenSpec                     // spec of a TokenReview
	roleObjectRef                     // objectRef of an audit event
	roleRequestURI                    // requestURI of an audit event
	roleAdmissionRequest              // request of an AdmissionReview
	roleAdmissionKind                 // request.kind of an AdmissionReview
	roleAdmissionResource             // request.resource of an AdmissionReview
	rolePatchOps                      // a JSON patch
	rolePatchOp                       // one operation of a JSON patch
	roleKubeUsers                     // users of a kubeconfig
	roleKubeUser                      // one of them: its user is the credential
)

// hintSrc says where the type hint of an embedded object comes from.
type hintSrc uint8

const (
	hintTarget    hintSrc = iota // the request (Target), e.g. watch event and Table row objects
	hintItems                    // the enclosing list
	hintRef                      // the enclosing audit event's objectRef
	hintAdmission                // the enclosing AdmissionReview's request
	hintSelf                     // the enclosing object (last-applied, JSON patch of the whole object)
)

// hideMode says how a hidden value is replaced.
type hideMode uint8

const (
	hidePlain         hideMode = iota // the placeholder
	hideBase64                        // the base64 of the placeholder (Secret data)
	hideBase64IfValid                 // base64 if the value was base64, else plain
)

const noHide = -1

// vctx is the context of one value. It is made and copied for every member and element,
// so its fields are ordered to leave no padding: 48 bytes, six words.
type vctx struct {
	role   role
	hint   hintSrc
	hmode  hideMode
	dock   uint8  // 1: the "auths" of a docker config; 2: one registry's entry in it
	hide   int32  // rule ID that replaces every leaf below, or noHide
	rdepth int32  // path segments matched by the field rules in rules
	obj    int32  // index in walker.objs of the enclosing object, or -1
	rules  uint64 // field rules still matching
	key    []byte // name of the value for the keyword rules; nil if none
}

// objState is what the rewriter knows about an enclosing Kubernetes object.
type objState struct {
	t     objType
	check bool // compare kind and apiVersion members with t and start over on a mismatch
	// start is the index of the object in the walker's input, for members read ahead (a
	// Secret's type).
	start int
	// metadata, for exemptions
	name, namespace []byte
	// audit Event objectRef
	refGroup, refResource, refSub []byte
	// AdmissionReview request
	admGroup, admKind, admRGroup, admResource []byte
	// kind and group named by members so far, for hinted types
	seenKind, seenGroup []byte
}

// hintFor returns the type hint for an embedded object in context c.
func (w *walker) hintFor(c vctx) objType {
	var t objType
	switch {
	case c.obj < 0:
		t = w.root
	case c.hint == hintItems:
		t = w.itemType(w.objs[c.obj].t)
	case c.hint == hintRef:
		st := &w.objs[c.obj]
		t = w.m.resourceType(st.refGroup, st.refResource, st.refSub)
	case c.hint == hintAdmission:
		t = w.admissionType(&w.objs[c.obj])
	case c.hint == hintSelf:
		t = w.objs[c.obj].t
	case c.hint == hintUnknown:
		t = w.m.unknownType()
	default:
		t = w.target
	}
	t.confirmed = false
	return t
}

func (w *walker) admissionType(st *objState) objType {
	r := w.m.resourceType(st.admRGroup, st.admResource, nil)
	if st.admKind == nil {
		return r
	}
	t := w.m.resolve(st.admGroup, st.admKind)
	t.secret = t.secret || r.secret
	if t.rules == nil {
		t.rules = r.rules
	}
	return t
}

// child returns the context of the member key of an object in context p.
func (w *walker) child(p *vctx, key []byte) (c vctx) {
	// Set field by field into the result: a composite literal is built in a temporary first.
	c.obj, c.key, c.hide, c.hmode = p.obj, key, p.hide, p.hmode
	if p.hide != noHide {
		return c
	}
	if p.rules != 0 {
		rules, hit := w.objs[p.obj].t.rules.step(p.rules, int(p.rdepth), key)
		if hit >= 0 {
			c.hide, c.hmode = int32(hit), hidePlain
			return c
		}
		c.rules, c.rdepth = rules, p.rdepth+1
	}
	if string(key) == lastAppliedKey {
		c.role = roleAnnotation
		return c
	}
	switch p.role {
	case roleObject:
		w.memberCtx(&w.objs[p.obj], key, &c)
	case roleMetadata:
		if string(key) == "annotations" {
			c.role = roleAnnotations
		}
	case roleAnnotations:
		c.role = roleAnnotation
	case roleBinaryData:
		c.role = roleBinaryValue
	case roleRow:
		if string(key) == "object" {
			c.role, c.hint = roleEmbedded, hintTarget
		}
	case roleKubeUser:
		if string(key) == "user" {
			c.hide, c.hmode = idKubeconfig, hidePlain
		}
	case roleTokenStatus:
		if string(key) == "token" {
			c.hide = idTokenRequest
		}
	case roleTokenSpec:
		if string(key) == "token" {
			c.hide = idTokenReview
		}
	case roleAdmissionRequest:
		switch string(key) {
		case "object", "oldObject":
			c.role, c.hint = roleEmbedded, hintAdmission
		case "kind":
			c.role = roleAdmissionKind
		case "resource":
			c.role = roleAdmissionResource
		}
	default:
		if p.role >= roleHelmSecretData { // the other roles have no members of their own
			helmChild(*p, key, &c)
		}
	}
	// Every value of a registry's entry in a docker config is part of the credential:
	// username, password, auth, identitytoken, registrytoken, email.
	switch {
	case p.dock == 1:
		c.dock = 2
	case p.dock == 2:
		c.hide, c.hmode = idDockerConfigAuth, hidePlain
	case string(key) == "auths":
		c.dock = 1
	default:
		c.dock = 0
	}
	return c
}

// memberCtx sets the context of the member key of a Kubernetes object.
func (w *walker) memberCtx(st *objState, key []byte, c *vctx) {
	t := &st.t
	if t.id == kHelmRelease {
		helmMember(key, c)
		return
	}
	open := !t.confirmed || t.id == kUnknown // the object may be a container of any kind
	switch string(key) {
	case "kind", "apiVersion":
		c.role = roleTypeField
	case "metadata":
		c.role = roleMetadata
	case "data":
		if t.secret && w.helmSecretType(c.obj) {
			// A Helm release record: its payload is masked inside (helm.go).
			c.role = roleHelmSecretData
			return
		}
		if t.secret || t.id == kUnknown {
			c.hide, c.hmode = idSecretData, hideBase64
			if t.id != kSecret {
				c.hmode = hideBase64IfValid
			}
		}
	case "stringData":
		if t.secret || t.id == kUnknown {
			c.hide, c.hmode = idSecretStringData, hidePlain
		}
	case "binaryData":
		if t.id == kConfigMap || t.id == kUnknown {
			c.role = roleBinaryData
		}
	case "items":
		if t.id == kList || open {
			c.role = roleItems
		}
	case "rows":
		if t.id == kTable || open {
			c.role = roleRows
		}
	case "object":
		if t.id == kWatchEvent || open {
			c.role, c.hint = roleEmbedded, hintTarget
		}
	case "status":
		if t.id == kTokenRequest || t.id == kUnknown {
			c.role = roleTokenStatus
		}
	case "spec":
		if t.id == kTokenReview || t.id == kUnknown {
			c.role = roleTokenSpec
		}
	case "objectRef":
		if t.id == kAuditEvent || open {
			c.role = roleObjectRef
		}
	case "requestObject", "responseObject":
		if t.id == kAuditEvent || open {
			c.role, c.hint = roleEmbedded, hintRef
		}
	case "requestURI":
		if t.id == kAuditEvent || open {
			c.role = roleRequestURI
		}
	case "request":
		if t.id == kAdmissionReview || open {
			c.role = roleAdmissionRequest
		}
	case "users":
		if t.id == kKubeconfig || t.id == kUnknown {
			c.role = roleKubeUsers
		}
	}
}

// elem returns the context of element idx of an array in context p.
func (w *walker) elem(p *vctx, idx int) (c vctx) {
	c.obj, c.key, c.hide, c.hmode, c.dock = p.obj, p.key, p.hide, p.hmode, p.dock // as in child
	if p.hide != noHide {
		return c
	}
	if p.rules != 0 {
		var buf [20]byte
		rules, hit := w.objs[p.obj].t.rules.step(p.rules, int(p.rdepth), indexSeg(&buf, idx))
		if hit >= 0 {
			c.hide, c.hmode = int32(hit), hidePlain
			return c
		}
		c.rules, c.rdepth = rules, p.rdepth+1
	}
	switch p.role {
	case roleItems:
		c.role, c.hint, c.key = roleEmbedded, hintItems, nil
	case roleRows:
		c.role, c.key = roleRow, nil
	case rolePatchOps:
		c.role, c.key = rolePatchOp, nil
	case roleKubeUsers:
		c.role, c.key = roleKubeUser, nil
	default:
		if p.role >= roleHelmSecretData { // as in child
			helmElem(*p, &c)
		}
	}
	return c
}

// secretFlag returns s if it is a command-line flag with a secret-sounding name and no value
// (--password), so that the next argument is its value. A flag's name is letters, digits, '-',
// '_' and '.', and not a letter's flag with its value joined (joinedFlagValue):
// -p$(DB_PASSWORD) and -pS3cretPw9 are flags with their values, not names.
func secretFlag(s []byte) []byte {
	if len(s) < 3 || s[0] != '-' || len(s) > maxKeyLen {
		return nil
	}
	for _, c := range s {
		if !isFlagNameByte(c) {
			return nil
		}
	}
	if joinedFlagValue(s) {
		return nil
	}
	if classifyKey(s) == keyPlain {
		return nil
	}
	return s
}

func isFlagNameByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// patchValueCtx returns the context of the value of a JSON patch operation: the context of the
// member its path names in the patched object.
func (w *walker) patchValueCtx(obj int32, src []byte, opStart int) vctx {
	path := memberString(src, opStart, "path")
	c := w.objectCtx(int(obj))
	st := &w.objs[obj]
	if path == nil {
		// No path: treat the value as the whole object, or as secret when that is possible.
		if st.t.secret || st.t.id == kUnknown {
			return vctx{obj: obj, hide: idSecretData, hmode: hideBase64IfValid}
		}
		return vctx{role: roleEmbedded, hint: hintSelf, obj: obj, hide: noHide}
	}
	if len(path) == 0 || string(path) == "/" {
		return vctx{role: roleEmbedded, hint: hintSelf, obj: obj, hide: noHide}
	}
	for _, seg := range bytes.Split(path[1:], []byte("/")) {
		if bytes.IndexByte(seg, '~') >= 0 {
			seg = bytes.ReplaceAll(bytes.ReplaceAll(seg, []byte("~1"), []byte("/")), []byte("~0"), []byte("~"))
		}
		if idx, ok := arrayIndex(seg); ok {
			c = w.elem(&c, idx)
		} else {
			c = w.child(&c, seg)
		}
		if c.role == roleEmbedded {
			// A path into an embedded object: the rest is relative to an object of unknown
			// shape, so mask it like one.
			c.role = roleValue
		}
	}
	return c
}

// arrayIndex parses a JSON pointer array index ("-" is the end of the array).
func arrayIndex(seg []byte) (int, bool) {
	if string(seg) == "-" {
		return 0, true
	}
	if len(seg) == 0 || len(seg) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range seg {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// typeConflict reports whether a kind or apiVersion member with value v (which it may keep)
// contradicts the type the object's
// members are masked for: a confirmed type that is named differently again, or a hinted type
// that does not mask at least what the named type would.
func (w *walker) typeConflict(c vctx, v []byte) bool {
	st := &w.objs[c.obj]
	t := &st.t
	if string(c.key) == "kind" {
		if t.confirmed {
			return !bytes.Equal(v, t.kind)
		}
		if st.seenKind != nil && !bytes.Equal(st.seenKind, v) {
			return true
		}
		st.seenKind = v
	} else {
		g := groupOf(v)
		if t.confirmed {
			return t.group != nil && !bytes.Equal(g, t.group)
		}
		if st.seenGroup != nil && !bytes.Equal(st.seenGroup, g) {
			return true
		}
		st.seenGroup = g
		if st.seenKind == nil {
			return false
		}
	}
	return !w.covers(*t, w.m.resolve(st.seenGroup, st.seenKind), 0)
}

// covers reports whether masking an object as the hinted (unconfirmed) type t masks at least
// what masking it as type l would. Hinted objects are already searched for the fields of every
// container, so what remains to compare are the type-specific rules and the hint for list items.
func (w *walker) covers(t, l objType, depth int) bool {
	anyOf := func(id kindID) bool { return l.id != id || t.id == id || t.id == kUnknown }
	switch {
	case l.secret && !t.secret && t.id != kUnknown:
		return false
	case !anyOf(kConfigMap), !anyOf(kTokenRequest), !anyOf(kTokenReview), !anyOf(kKubeconfig):
		return false
	case l.rules != nil && l.rules != t.rules && (t.rules == nil || t.rules != w.m.rulesUnion):
		return false
	case l.id == kList:
		return depth < 2 && w.covers(w.itemType(t), w.itemType(l), depth+1)
	}
	return true
}
