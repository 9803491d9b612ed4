package trail

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
)

// A message on a trail subject carries one record or several, all of that subject: the records'
// JSON documents, each on a line of its own ('\n' between them; an encoded record has no raw
// newline). A message of one record is that record's JSON alone, as this package has always
// published it.

// ErrNoRecord means a message holds no record: it is empty or holds only blank lines.
var ErrNoRecord = errors.New("trail: no record in the message")

// DecodeAll returns the records of a message's data, in order, each with the error Decode
// returns for it: a malformed record or one of an unknown kind is reported where it stands and
// does not hide the records around it. The errors of a message with several records name the
// record's position (1 for the first). Blank lines are skipped; a message of blank lines only
// yields ErrNoRecord. A message without a newline yields Decode's result, unchanged. A message
// that is one JSON document across several lines (a record not published by this package,
// indented) is decoded as that one record, as Decode would.
//
// DecodeAll checks no subject: a consumer compares Subject of every record with the message's
// subject, as it does for a message of one record.
func DecodeAll(data []byte) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		if bytes.IndexByte(data, '\n') < 0 {
			// One record, as a message has always been: Decode's result unchanged.
			yield(Decode(data))
			return
		}
		n := 0
		for line := range lines(data) {
			n++
			r, err := Decode(line)
			if err != nil && n == 1 && json.Valid(data) {
				// One document over several lines.
				yield(Decode(data))
				return
			}
			if err != nil {
				err = fmt.Errorf("record %d: %w", n, err)
			}
			if !yield(r, err) {
				return
			}
		}
		if n == 0 {
			yield(nil, ErrNoRecord)
		}
	}
}

// lines returns the lines of data that are not blank.
func lines(data []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for line := range bytes.Lines(data) {
			if len(bytes.TrimSpace(line)) > 0 && !yield(bytes.TrimSuffix(line, newline)) {
				return
			}
		}
	}
}

var newline = []byte{'\n'}

// batchMsgID returns the JetStream message ID of a message carrying the records with these IDs,
// in this order (more than one): the first record's ID, the number of the others and a hash of
// every ID, so the message published again (a retry) has the same ID and is stored once, and
// no other set of records has it.
func batchMsgID(ids []string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, id := range ids {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(id)))])
		h.Write([]byte(id))
	}
	var sum [sha256.Size]byte
	b := make([]byte, 0, len(ids[0])+48)
	b = append(b, ids[0]...)
	b = append(b, '+')
	b = strconv.AppendInt(b, int64(len(ids)-1), 10)
	b = append(b, '.')
	b = hex.AppendEncode(b, h.Sum(sum[:0])[:16])
	return string(b)
}

// recordIDs returns the IDs of the records in a message's data, for loss reports; a record
// whose header does not decode is named by its position.
func recordIDs(data []byte) []string {
	var ids []string
	n := 0
	for line := range lines(data) {
		n++
		var m struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(line, &m); err != nil || m.ID == "" {
			ids = append(ids, "#"+strconv.Itoa(n))
			continue
		}
		ids = append(ids, m.ID)
	}
	return ids
}
