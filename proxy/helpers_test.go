package proxy_test

import (
	"bufio"
	"encoding/pem"
	"io"
	"net/http/httptest"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

func jetstreamFilter(subject string) jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
}

func jetstreamWait(d time.Duration) jetstream.FetchOpt { return jetstream.FetchMaxWait(d) }

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func withClaims(c testbed.Claims, extra map[string]any) testbed.Claims {
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func certPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
