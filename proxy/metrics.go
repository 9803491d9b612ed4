package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// metrics are the proxy's Prometheus metrics.
type metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	authFailures   *prometheus.CounterVec
	upstreamErrors prometheus.Counter
	maskFailures   prometheus.Counter
	maskingTime    prometheus.Histogram
	masked         prometheus.Counter
	unrecorded     prometheus.Counter
	streams        prometheus.Gauge
	held           prometheus.Gauge

	// byVerbCode caches the requests counter and latency histogram of each verb and code seen
	// (verbCode to *requestObservers), which WithLabelValues looks up per request: formatting
	// the code, hashing the labels and taking the vector's lock. It holds the vectors' own
	// children, so what is exported is the same; it stops growing at maxCachedObservers (an
	// upstream can answer with any code) and the rest are looked up as before.
	byVerbCode sync.Map
	cached     atomic.Int32
}

type verbCode struct {
	verb string
	code int
}

type requestObservers struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// maxCachedObservers bounds metrics.byVerbCode.
const maxCachedObservers = 256

// itemCacheReporter is a Masker that says how its cache of masked list items does
// (*masking.Masker).
type itemCacheReporter interface {
	ItemCacheStats() masking.ItemCacheStats
}

func newMetrics(reg prometheus.Registerer, masker Masker) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_proxy_requests_total", Help: "Requests handled, by verb and HTTP status code.",
		}, []string{"verb", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_proxy_request_duration_seconds",
			Help:    "Time until the response headers were sent, by verb.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"verb"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_proxy_authentication_failures_total", Help: "Refused authentications, by reason.",
		}, []string{"reason"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_proxy_upstream_errors_total", Help: "Requests that failed to reach the API server.",
		}),
		maskFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_proxy_masking_failures_total", Help: "Responses withheld because they could not be masked.",
		}),
		maskingTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatehouse_proxy_masking_duration_seconds",
			Help: "Time spent masking each response read whole (objects and lists, not watches or logs), " +
				"whether or not it could be masked.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		masked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_proxy_masked_values_total", Help: "Secret values masked in responses.",
		}),
		unrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_proxy_unrecorded_total", Help: "Requests or sessions whose trail record could not be written.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_proxy_upgraded_streams", Help: "Exec, attach and port-forward streams open now.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_proxy_requests_held_for_approval", Help: "Requests waiting for an approval decision now.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.authFailures, m.upstreamErrors, m.maskFailures, m.maskingTime, m.masked, m.unrecorded, m.streams, m.held)
		if r, ok := masker.(itemCacheReporter); ok {
			reg.MustRegister(itemCacheMetrics(r)...)
		}
	}
	return m
}

// itemCacheMetrics are the metrics of the masker's cache of masked list items, read when they
// are collected.
func itemCacheMetrics(r itemCacheReporter) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_proxy_masking_item_cache_hits_total",
			Help: "Runs of list items whose masking was taken from the masker's cache, the objects unchanged since masked.",
		}, func() float64 { return float64(r.ItemCacheStats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_proxy_masking_item_cache_misses_total",
			Help: "Runs of list items masked because the masker's cache did not hold them.",
		}, func() float64 { return float64(r.ItemCacheStats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_proxy_masking_item_cache_bytes",
			Help: "Memory the masker's cache of masked list items holds, by its own accounting.",
		}, func() float64 { return float64(r.ItemCacheStats().Bytes) }),
	}
}

func (m *metrics) observe(r *trail.Request) {
	o := m.observers(r.Operation.Verb, r.Code)
	o.requests.Inc()
	o.latency.Observe(r.Latency.Seconds())
	if r.Masking != nil {
		m.masked.Add(float64(r.Masking.Fields))
	}
}

// observers returns the requests counter and latency histogram for verb and code.
func (m *metrics) observers(verb string, code int) *requestObservers {
	key := verbCode{metricVerb(verb), code}
	if o, ok := m.byVerbCode.Load(key); ok {
		return o.(*requestObservers)
	}
	o := &requestObservers{
		requests: m.requests.WithLabelValues(key.verb, strconv.Itoa(code)),
		latency:  m.latency.WithLabelValues(key.verb),
	}
	// A slot is taken before the observers are stored, so the cache never holds more than
	// maxCachedObservers, and given back if another request stored them first.
	for {
		n := m.cached.Load()
		if n >= maxCachedObservers {
			return o
		}
		if m.cached.CompareAndSwap(n, n+1) {
			break
		}
	}
	if _, loaded := m.byVerbCode.LoadOrStore(key, o); loaded {
		m.cached.Add(-1)
	}
	return o
}

// metricVerb is the verb label of a request's metrics: the verb of a resource request, the
// lower-case method of a non-resource one, and "other" for any other method, which a client,
// authenticated or not, could otherwise invent without end, each a new series.
func metricVerb(verb string) string {
	switch verb {
	case "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy",
		"post", "put", "head", "options":
		return verb
	}
	return "other"
}
