package approvals

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// volatileMetadata are the metadata fields the API server sets or changes by itself. They are
// left out of fingerprints: they differ between the check of an operation and its execution
// without the operation being different.
var volatileMetadata = []string{
	"resourceVersion", "uid", "generation", "managedFields", "creationTimestamp",
	"deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
}

// Fingerprinter computes the fingerprints that bind grants to operations. Fingerprints are
// HMAC-SHA256 under a secret key: they are stored and shown (approval requests, the trail,
// ClickHouse), and a plain hash of an object would let anyone who sees one test guesses of the
// secret values in it offline. Every component that fingerprints must use the same key; Gatehouse
// uses the masking key.
type Fingerprinter struct {
	key []byte
}

// NewFingerprinter returns a Fingerprinter with key, at least 16 bytes.
func NewFingerprinter(key []byte) (*Fingerprinter, error) {
	if len(key) < 16 {
		return nil, errors.New("approvals: the fingerprint key must have at least 16 bytes")
	}
	return &Fingerprinter{key: append([]byte(nil), key...)}, nil
}

// Fingerprint returns the fingerprint (hex) binding a grant to one operation: the requester, the
// admission operation (a patch and an update of the same object are the same operation), the
// resource, namespace, name and subresource, and the object as admission will store it,
// canonicalised (sorted keys, no volatile metadata; with generateName, no generated name). What
// the API server or Gatehouse sets by itself is left out, and nothing else: the status only
// where the call cannot change it (anything but the status subresource), and of the annotations
// only the ones the mutating webhook stamps (identity.AnnotationSessionID and
// AnnotationApprovalID), which differ between a held call and its re-sent retry. The API version
// is left out: the same object through another version is the same operation. object may be nil
// (DELETE, CONNECT).
func (f *Fingerprinter) Fingerprint(requester string, op trail.Operation, object []byte) (string, error) {
	canon := []byte("null")
	if len(object) > 0 {
		var v map[string]any
		if err := json.Unmarshal(object, &v); err != nil {
			return "", fmt.Errorf("approvals: fingerprint: object is not a JSON object: %w", err)
		}
		strip(v, op.Subresource == "status")
		var err error
		if canon, err = json.Marshal(v); err != nil {
			return "", fmt.Errorf("approvals: fingerprint: %w", err)
		}
	}
	h := hmac.New(sha256.New, f.key)
	for _, part := range []string{
		"gatehouse-fingerprint-v2", requester, trail.AdmissionOperation(op.Verb, op.Subresource), op.APIGroup, op.Resource,
		op.Subresource, op.Namespace, op.Name,
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stamped are the annotations the mutating webhook sets on every write through the gateway.
var stamped = []string{identity.AnnotationSessionID, identity.AnnotationApprovalID}

func strip(obj map[string]any, keepStatus bool) {
	if !keepStatus {
		delete(obj, "status")
	}
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		return
	}
	for _, f := range volatileMetadata {
		delete(md, f)
	}
	if gn, _ := md["generateName"].(string); gn != "" {
		delete(md, "name")
	}
	if ann, ok := md["annotations"].(map[string]any); ok {
		for _, k := range stamped {
			delete(ann, k)
		}
		if len(ann) == 0 {
			delete(md, "annotations")
		}
	}
}
