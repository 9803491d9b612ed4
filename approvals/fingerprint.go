package approvals

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
// operation, the resource, namespace, name and subresource, and the object as admission sees
// it, canonicalised (sorted keys, no volatile metadata, no status, no annotations Gatehouse
// itself stamps; with generateName, no generated name). The API version is left out: the same
// object through another version is the same operation. object may be nil (DELETE, CONNECT).
func (f *Fingerprinter) Fingerprint(requester string, op trail.Operation, object []byte) (string, error) {
	canon := []byte("null")
	if len(object) > 0 {
		var v map[string]any
		if err := json.Unmarshal(object, &v); err != nil {
			return "", fmt.Errorf("approvals: fingerprint: object is not a JSON object: %w", err)
		}
		strip(v)
		var err error
		if canon, err = json.Marshal(v); err != nil {
			return "", fmt.Errorf("approvals: fingerprint: %w", err)
		}
	}
	h := hmac.New(sha256.New, f.key)
	for _, part := range []string{
		"gatehouse-fingerprint-v1", requester, strings.ToUpper(op.Verb), op.APIGroup, op.Resource,
		op.Subresource, op.Namespace, op.Name,
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func strip(obj map[string]any) {
	delete(obj, "status")
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
		for k := range ann {
			if strings.HasPrefix(k, "gatehouse.dev/") {
				delete(ann, k)
			}
		}
		if len(ann) == 0 {
			delete(md, "annotations")
		}
	}
}
