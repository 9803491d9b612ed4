package enricher

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitEventList(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		kind, api string
		items     []string
		wantErr   bool
	}{
		{"typical", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"a":1},{"b":"]}"}]}`,
			"EventList", "audit.k8s.io/v1", []string{`{"a":1}`, `{"b":"]}"}`}, false},
		{"white space and order", " {\n\"items\" : [ {\"x\":[1,{\"y\":\"\\\"}\"}]} ] , \"kind\":\"EventList\", \"apiVersion\":\"audit.k8s.io/v1\"}\n",
			"EventList", "audit.k8s.io/v1", []string{`{"x":[1,{"y":"\"}"}]}`}, false},
		{"no items", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`, "EventList", "audit.k8s.io/v1", nil, false},
		{"null items", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":null}`, "EventList", "audit.k8s.io/v1", nil, false},
		{"empty object", `{}`, "", "", nil, false},
		{"not an object", `[{"a":1}]`, "", "", nil, true},
		{"truncated", `{"kind":"EventList","items":[{"a":1}`, "", "", nil, true},
		{"unterminated string", `{"kind":"EventList","items":[{"a":"1}]}`, "", "", nil, true},
		{"mismatched brackets", `{"items":[{"a":[1}]]}`, "", "", nil, true},
		{"item not an object", `{"items":[1]}`, "", "", nil, true},
		{"trailing data", `{"items":[]} x`, "", "", nil, true},
		{"control character", "{\"kind\":\"Event\x01List\"}", "", "", nil, true},
		{"missing colon", `{"kind" "EventList"}`, "", "", nil, true},
		{"empty", ``, "", "", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := splitEventList([]byte(tc.in))
			if tc.wantErr {
				require.Error(t, err)
				assert.True(t, errors.Is(err, errSyntax))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.kind, l.Kind)
			assert.Equal(t, tc.api, l.APIVersion)
			var got []string
			for _, it := range l.Items {
				got = append(got, string(it))
			}
			assert.Equal(t, tc.items, got)
		})
	}
}

func TestSplitEventListMatchesEncodingJSON(t *testing.T) {
	body := testEventList(0, 50, genOptions{id: "split"})
	l, err := splitEventList(body)
	require.NoError(t, err)
	var want struct{ Items []json.RawMessage }
	require.NoError(t, json.Unmarshal(body, &want))
	require.Len(t, l.Items, len(want.Items))
	for i := range want.Items {
		assert.JSONEq(t, string(want.Items[i]), string(l.Items[i]))
	}
}

func FuzzSplitEventList(f *testing.F) {
	f.Add([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"a":1}]}`))
	f.Add(testEventList(0, 3, genOptions{id: "fuzz"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := splitEventList(b)
		if err != nil {
			return
		}
		// Whatever it accepts as items are bracket-balanced objects within the input.
		for _, it := range l.Items {
			require.NotEmpty(t, it)
			require.Equal(t, byte('{'), it[0])
			require.Equal(t, byte('}'), it[len(it)-1])
		}
	})
}
