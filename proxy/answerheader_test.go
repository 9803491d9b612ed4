package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestSetAnswerHeaderAsSet: the proxy's own headers of an answer are what http.Header.Set would
// make them, and a later Add or Set of one leaves the other as it was.
func TestSetAnswerHeaderAsSet(t *testing.T) {
	st := &requestState{w: newRecordingWriter(httptest.NewRecorder())}
	st.w.Header().Set("Audit-Id", "from-the-upstream")
	st.setAnswerHeader(0, "Audit-Id", "a")
	st.setAnswerHeader(1, SessionHeader, "s")
	want := http.Header{}
	want.Set("Audit-Id", "a")
	want.Set(SessionHeader, "s")
	assert.Equal(t, want, st.w.Header())

	st.w.Header().Add("Audit-Id", "b")
	assert.Equal(t, []string{"a", "b"}, st.w.Header().Values("Audit-Id"))
	assert.Equal(t, []string{"s"}, st.w.Header().Values(SessionHeader))
	st.w.Header().Set("Audit-Id", "c") // a re-sent call's
	st.w.Header().Add(SessionHeader, "t")
	assert.Equal(t, []string{"c"}, st.w.Header().Values("Audit-Id"))
	assert.Equal(t, []string{"s", "t"}, st.w.Header().Values(SessionHeader))
}
