package daemon

import (
	"time"

	"github.com/facegate/facegate/verify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's Prometheus series, on a registry of their own
// (no global state). Per-frame series are resolved once so observing them
// allocates nothing.
type Metrics struct {
	Registry *prometheus.Registry

	frames, faces, embedded prometheus.Counter
	decisions               *prometheus.CounterVec
	stages                  map[string]prometheus.Observer
}

// Gauge is a series read from the daemon's state when scraped.
type Gauge struct {
	Name, Help string
	Value      func() float64
}

// NewMetrics registers every series; the gauges read state (camera, broker,
// outbox, gallery) when scraped.
func NewMetrics(gauges []Gauge) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		frames:   prometheus.NewCounter(prometheus.CounterOpts{Name: "facegate_frames_total", Help: "Frames processed."}),
		faces:    prometheus.NewCounter(prometheus.CounterOpts{Name: "facegate_faces_total", Help: "Faces found in processed frames."}),
		embedded: prometheus.NewCounter(prometheus.CounterOpts{Name: "facegate_faces_embedded_total", Help: "Faces that passed the gates and liveness and were embedded."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facegate_decisions_total", Help: "Decisions by kind and reason."},
			[]string{"kind", "reason"}),
		stages: map[string]prometheus.Observer{},
	}
	stage := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "facegate_stage_seconds", Help: "Time per frame in each stage of the chain.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1},
	}, []string{"stage"})
	for _, s := range []string{"detect", "landmarks", "liveness", "align", "encode", "search", "frame"} {
		m.stages[s] = stage.WithLabelValues(s)
	}
	reg.MustRegister(m.frames, m.faces, m.embedded, m.decisions, stage)
	for _, g := range gauges {
		m.registerGauge(g)
	}
	return m
}

func (m *Metrics) observeFrame(t *verify.Timings, search, total time.Duration, faces int, embedded bool) {
	m.frames.Inc()
	m.faces.Add(float64(faces))
	if embedded {
		m.embedded.Inc()
	}
	m.stages["detect"].Observe(t.Detect.Seconds())
	m.stages["landmarks"].Observe(t.Landmarks.Seconds())
	if t.Liveness > 0 {
		m.stages["liveness"].Observe(t.Liveness.Seconds())
	}
	if embedded {
		m.stages["align"].Observe(t.Align.Seconds())
		m.stages["encode"].Observe(t.Encode.Seconds())
		m.stages["search"].Observe(search.Seconds())
	}
	m.stages["frame"].Observe(total.Seconds())
}

func (m *Metrics) decision(d *Decision) {
	m.decisions.WithLabelValues(d.Kind, d.Reason).Inc()
}

func (m *Metrics) registerGauge(g Gauge) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.Name, Help: g.Help}, g.Value))
}
