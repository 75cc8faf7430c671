package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/facegate/facegate/camera"
	"github.com/facegate/facegate/detect"
	"github.com/facegate/facegate/internal/confmsg"
	"github.com/facegate/facegate/internal/mqttnet"
	"github.com/facegate/facegate/internal/onnx"
	"github.com/facegate/facegate/store"
	"github.com/facegate/facegate/verify"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gocv.io/x/gocv"
)

// Deps are what the daemon is given rather than finds: the loaded runtime,
// the checked model files, where to log, and a channel that asks for a
// gallery reload (SIGHUP).
type Deps struct {
	Runtime *onnx.Runtime
	Files   verify.ModelFiles
	Threads int
	Log     *slog.Logger
	Version string
	Reload  <-chan struct{}
}

// galleryPoll is how often the store's gallery version is checked: an
// enrollment is at the door within a second.
const galleryPoll = time.Second

// drainWait bounds how long a source that ended (exit_at_end) waits for
// the outbox to reach the broker before the daemon stops.
const drainWait = 10 * time.Second

// Run is the door: it watches the camera, decides, records every decision
// with its outbox row, and publishes them, until ctx ends (nil) or the
// source ends with exit_at_end (nil, after the outbox drains). Anything
// wrong at start (database, models, camera config, broker URL) is returned
// before the first frame.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var key ed25519.PrivateKey // nil: decisions go out unsigned
	if cfg.SigningKey != "" {
		k, err := LoadSigningKey(cfg.SigningKey)
		if err != nil {
			return err
		}
		key = k
		log.Info("decisions are signed", "key", cfg.SigningKey, "public_key", KeyFingerprint(key.Public().(ed25519.PublicKey)))
	}
	db, err := store.Open(ctx, cfg.DB, deps.Files.EncoderID)
	if err != nil {
		return err
	}
	defer db.Close()
	pipe, err := verify.Open(deps.Runtime, deps.Files, deps.Threads)
	if err != nil {
		return err
	}
	defer pipe.Close()
	roster, err := LoadRoster(ctx, db, deps.Files.EncoderID, dimOf(deps.Files))
	if err != nil {
		return err
	}
	src, err := camera.Open(cfg.Camera, log.With("part", "camera"))
	if err != nil {
		return err
	}
	pc := cfg.PolicyConfig(verify.IdentifyThreshold, detect.DefaultLivenessThreshold)
	if err := pc.Validate(); err != nil {
		return err
	}
	broker, mqttURL, err := startBroker(cfg.MQTT.URL, log)
	if err != nil {
		return err
	}
	if broker != nil {
		defer broker.Close()
	}
	opts, err := mqttOptions(cfg, mqttURL, deps.Version)
	if err != nil {
		return err
	}
	pub, err := NewPublisher(opts, db, log.With("part", "mqtt"))
	if err != nil {
		return err
	}
	faces, err := newDebugFaces(cfg.DebugFaces, log)
	if err != nil {
		return err
	}
	var lis net.Listener
	if cfg.HTTP != "" {
		if lis, err = net.Listen("tcp", cfg.HTTP); err != nil {
			return fmt.Errorf("http %s: %w", cfg.HTTP, err)
		}
	}

	metrics := NewMetrics([]Gauge{
		{"facegate_camera_connected", "1 while the camera delivers frames.", func() float64 { return b2f(src.Stats().Connected) }},
		{"facegate_camera_frames_captured", "Frames the camera delivered.", func() float64 { return float64(src.Stats().Captured) }},
		{"facegate_camera_frames_dropped", "Frames dropped while the chain was busy with an older one.", func() float64 { return float64(src.Stats().Dropped) }},
		{"facegate_camera_reconnects", "Times the camera was reopened.", func() float64 { return float64(src.Stats().Reconnects) }},
		{"facegate_broker_connected", "1 while connected to the MQTT broker.", func() float64 { return b2f(pub.Connected()) }},
		{"facegate_events_delivered", "Decisions acknowledged by the broker since start.", func() float64 { return float64(pub.Delivered()) }},
		{"facegate_outbox_depth", "Decisions recorded but not yet acknowledged by the broker.", func() float64 {
			n, err := db.OutboxDepth(context.Background())
			if err != nil {
				return -1
			}
			return float64(n)
		}},
	})
	door := NewDoor(pipe, detect.DefaultGates(), NewPolicy(pc), pc.Liveness, roster, metrics)
	for _, g := range []Gauge{
		{"facegate_gallery_people", "People in the loaded gallery.", func() float64 { return float64(door.Roster().Gallery.Len()) }},
		{"facegate_gallery_version", "Store version of the loaded gallery.", func() float64 { return float64(door.Roster().Gallery.Version()) }},
	} {
		metrics.registerGauge(g)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	spawn := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error(name+" stopped", "err", err)
			}
		}()
	}
	srcDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		srcDone <- src.Run(ctx)
	}()
	pubCtx, stopPub := context.WithCancel(context.Background()) // outlives ctx to drain
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		if err := pub.Run(pubCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("mqtt stopped", "err", err)
		}
	}()
	defer func() {
		stopPub()
		pubWG.Wait()
	}()
	spawn("gallery watcher", func(ctx context.Context) error {
		t := time.NewTicker(galleryPoll)
		defer t.Stop()
		for {
			forced := false
			select {
			case <-ctx.Done():
				return nil
			case <-deps.Reload:
				forced = true
			case <-t.C:
			}
			v, err := db.GalleryVersion(ctx)
			if err != nil {
				log.Warn("gallery version", "err", err)
				continue
			}
			if !forced && v == door.Roster().Gallery.Version() {
				continue
			}
			r, err := LoadRoster(ctx, db, deps.Files.EncoderID, dimOf(deps.Files))
			if err != nil {
				log.Error("gallery reload failed; keeping the old one", "err", err)
				continue
			}
			door.SetRoster(r)
			log.Info("gallery reloaded", "people", r.Gallery.Len(), "templates", r.Gallery.Templates(), "version", v)
			logScoring(log, r.Scoring, cfg.Policy.Threshold)
		}
	})
	if faces != nil {
		spawn("debug faces", faces.sweep)
	}
	if cfg.EventsKeep > 0 {
		spawn("events retention", func(ctx context.Context) error { return pruneEvents(ctx, db, cfg.EventsKeep, log) })
	}
	if lis != nil {
		srv := &http.Server{Handler: healthMux(metrics, src, pub, door), ReadHeaderTimeout: 5 * time.Second}
		spawn("http", func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				sctx, c := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer c()
				srv.Shutdown(sctx)
			}()
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		spawn("watchdog", func(ctx context.Context) error {
			t := time.NewTicker(interval / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					// Only a door whose frames still flow is alive.
					if src.Stats().Connected || cfg.Camera.Kind() != camera.Device {
						daemon.SdNotify(false, daemon.SdNotifyWatchdog)
					}
				}
			}
		})
	}
	daemon.SdNotify(false, daemon.SdNotifyReady)
	log.Info("door ready", "door", cfg.Door, "camera", cfg.Camera.Source, "mqtt", mqttnet.Redact(mqttURL),
		"people", roster.Gallery.Len(), "threshold", pc.Threshold, "liveness", pc.Liveness, "version", deps.Version)
	logScoring(log, roster.Scoring, cfg.Policy.Threshold)

	err = loop(ctx, src, door, db, pub, cfg, key, faces, log)
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	if errors.Is(err, io.EOF) {
		log.Info("camera source ended; delivering what is left in the outbox")
		drain(db, pub, log)
		err = nil
	}
	cancel()
	wg.Wait()
	<-srcDone
	st := src.Stats()
	log.Info("door stopped", "frames", st.Delivered, "dropped", st.Dropped, "captured", st.Captured, "reconnects", st.Reconnects)
	return err
}

// loop hands the newest frame to the chain and records each decision with
// its outbox row in one transaction, then wakes the publisher.
func loop(ctx context.Context, src *camera.Source, door *Door, db *store.DB, pub *Publisher, cfg Config, key ed25519.PrivateKey, faces *debugFaces, log *slog.Logger) error {
	frame := gocv.NewMat()
	defer frame.Close()
	for {
		_, at, err := src.Next(ctx, &frame)
		switch {
		case errors.Is(err, io.EOF):
			return io.EOF
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		dec, err := door.Observe(frame, at)
		if err != nil {
			log.Error("frame", "err", err)
			continue
		}
		if dec == nil {
			continue
		}
		ev := NewEvent(cfg.Door, *dec, time.Now())
		if key != nil {
			if ev, err = ev.Sign(key); err != nil {
				log.Error("signing a decision", "err", err)
				continue
			}
		}
		payload, err := ev.Payload()
		if err != nil {
			log.Error("decision payload", "err", err)
			continue
		}
		rec := store.Event{ID: ev.ID, Time: ev.Time, Door: cfg.Door, Kind: dec.Kind, Person: dec.PersonID, Reason: dec.Reason,
			Score: dec.Score, Margin: dec.Margin, Liveness: dec.Liveness, Frames: dec.Frames, Payload: payload}
		if err := db.RecordDecision(ctx, rec, Topic(cfg.MQTT.TopicPrefix, cfg.Door, dec.Kind)); err != nil {
			// The decision is not lost silently: it is logged in full.
			log.Error("recording a decision failed", "err", err, "decision", string(payload))
			continue
		}
		pub.Notify()
		if box, ok := door.LastFace(); ok && dec.Kind == KindDeny {
			faces.save(frame, box, ev.ID, dec.Reason)
		}
		log.Info("decision", "kind", dec.Kind, "reason", dec.Reason, "person", dec.PersonID, "score", dec.Score,
			"liveness", dec.Liveness, "frames", dec.Frames, "id", ev.ID)
	}
}

// drain waits, for a bounded time, until the outbox is empty.
func drain(db *store.DB, pub *Publisher, log *slog.Logger) {
	deadline := time.Now().Add(drainWait)
	for time.Now().Before(deadline) {
		n, err := db.OutboxDepth(context.Background())
		if err == nil && n == 0 {
			return
		}
		pub.Notify()
		time.Sleep(50 * time.Millisecond)
	}
	n, _ := db.OutboxDepth(context.Background())
	log.Warn("stopping with decisions still in the outbox; they are delivered at the next start", "outbox", n)
}

// pruneEvents deletes delivered decisions older than keep from the audit
// log, at start and then every hour, until ctx ends.
func pruneEvents(ctx context.Context, db *store.DB, keep time.Duration, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := db.PruneEvents(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("events retention", "err", err)
		case n > 0:
			log.Info("old events deleted", "events", n, "older_than", confmsg.FormatDuration(keep))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// logScoring says how faces are scored now, and anything to mind about it.
// configured is the file's policy.threshold (0: not set).
func logScoring(log *slog.Logger, s Scoring, configured float32) {
	for _, w := range s.Warnings {
		log.Warn(w)
	}
	if s.Head == "" {
		return
	}
	log.Info("faces are scored by the active head", "head", s.Head, "method", s.Method, "threshold", s.Threshold)
	if configured != 0 {
		log.Warn("policy.threshold applies to plain cosine only; the active head uses its calibrated door threshold", "policy.threshold", configured, "head", s.Head, "threshold", s.Threshold)
	}
}

// healthMux serves /healthz (JSON: camera, broker, gallery) and /metrics.
func healthMux(m *Metrics, src *camera.Source, pub *Publisher, door *Door) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		st := src.Stats()
		r0 := door.Roster()
		body := map[string]any{
			"camera":  map[string]any{"connected": st.Connected, "captured": st.Captured, "dropped": st.Dropped, "last_error": st.LastError},
			"broker":  map[string]any{"connected": pub.Connected(), "delivered": pub.Delivered()},
			"gallery": map[string]any{"people": r0.Gallery.Len(), "version": r0.Gallery.Version(), "head": r0.Scoring.Head, "method": r0.Scoring.Method},
		}
		healthy := st.Connected || st.Captured > 0
		body["ok"] = healthy
		w.Header().Set("Content-Type", "application/json")
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	return mux
}

func dimOf(f verify.ModelFiles) int {
	if f.EncoderSpec.Dim > 0 {
		return f.EncoderSpec.Dim
	}
	return verify.EmbeddingDim
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
