package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/facegate/facegate/daemon"
)

// ServeCommand runs the door.
type ServeCommand struct {
	stdout, stderr io.Writer
	version        string
}

const serveUsage = `Usage: facegate serve --config FILE [--KEY=VALUE ...]

Runs the door: watches the camera, recognises enrolled people, and publishes
unlock and deny decisions over MQTT (topics facegate/<door>/events/unlock and
.../deny, retained status .../status). Every decision is written to the
database with an outbox row first, so a broker outage or a restart loses
none. Every key of the YAML file can be set by a flag of the same dotted name,
and flags win. SIGHUP reloads the gallery (it also reloads by itself within a
second of an enrollment, or of a head activated with facegate heads);
SIGTERM or SIGINT stop it. Faces are scored by plain cosine at
policy.threshold (0.55), or by the active head at its door threshold
(facegate calibrate). Decisions older than events_keep (90 days) are
deleted from the database's audit log.

Examples:

	facegate serve --config /etc/facegate/facegate.yaml
	facegate serve --config door.yaml --camera.source ../shared/data/clips/cap13_edit2.mp4 --camera.exit_at_end
`

func (c *ServeCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv("FACEGATE_CONFIG"), "the YAML configuration file (env FACEGATE_CONFIG)")
	overrides := daemon.RegisterFlags(fs)
	if err := parseFlags(fs, args, c.stderr, serveUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *configPath == "" {
		return usagef("no configuration: give --config FILE (see deploy/facegate.example.yaml)")
	}
	cfg, err := daemon.Load(*configPath, *overrides)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log_level %q: %w", cfg.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))

	mf := modelFlags{dir: firstOf(cfg.Models, os.Getenv("FACEGATE_MODELS")), ortLib: firstOf(cfg.ORTLib, os.Getenv("FACEGATE_ORT_LIB")),
		threads: cfg.Threads, encoder: os.Getenv("FACEGATE_ENCODER")}
	def := defaultEncoderFlags()
	mf.encoderMean, mf.encoderStd, mf.encoderColour = def.encoderMean, def.encoderStd, def.encoderColour
	rt, files, threads, err := mf.load(1)
	if err != nil {
		return err
	}
	defer rt.Close()

	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return daemon.Run(ctx, cfg, daemon.Deps{Runtime: rt, Files: files, Threads: threads, Log: log, Version: c.version, Reload: reload})
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
