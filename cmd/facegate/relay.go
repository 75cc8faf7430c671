package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/facegate/facegate/relay"
)

// RelayCommand runs the reference relay: a door's signed unlocks drive an
// output.
type RelayCommand struct {
	stdout, stderr io.Writer
}

const relayUsage = `Usage: facegate relay --config FILE [--check]

Subscribes to one door's unlock events (<topic_prefix>/<door>/events/unlock)
and, for each one it accepts, runs a command or pulses a GPIO line. An
unlock is accepted only if it is signed by the door's key (public_key), is
for this door, is an unlock naming a person, is fresh (its time no more than
max_age + skew before this machine's clock, nor more than skew after it), and
its id has not been seen before. Every message refused is logged with its
reason: malformed, wrong_door, not_unlock, unsigned, bad_signature, stale,
future, replay, overload. Keep this machine's clock right (NTP).

The command runs without a shell, with FACEGATE_PERSON_ID,
FACEGATE_PERSON_NAME, FACEGATE_EVENT_ID, FACEGATE_EVENT_TIME and FACEGATE_DOOR
in its environment, and is killed (with its children) after output.timeout.
A GPIO line is driven through the Linux GPIO character device
(/dev/gpiochipN): active for output.gpio.pulse, inactive otherwise, and
inactive when the relay stops.

The configuration (YAML; unknown keys are errors; durations are "5s",
"1500ms"):

    door: front                        # required
    public_key: /etc/facegate/front.pub  # the door's public key (facegate keygen); required
    topic_prefix: facegate
    max_age: 5s
    skew: 1s
    log_level: info
    mqtt:
      url: tcp://127.0.0.1:1883        # ssl://broker:8883 with ca (and cert, key) for TLS
      client_id: ""                    # empty: facegate-relay-<door>
      username: facegate-relay-front
      password_file: /etc/facegate/mqtt.password
      ca: ""
      cert: ""
      key: ""
    output:                            # exactly one of command and gpio
      command: [/usr/local/bin/open-door, --seconds, "3"]
      timeout: 10s
      # gpio: {chip: gpiochip0, line: 17, active_low: false, pulse: 1s}

--check loads the configuration and the key, opens the output (so a
missing GPIO chip or a line in use shows now), and exits.

Examples:

	facegate relay --config /etc/facegate/relay.yaml
	facegate relay --config relay.yaml --check
`

func (c *RelayCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv("FACEGATE_RELAY_CONFIG"), "the YAML configuration file (env FACEGATE_RELAY_CONFIG)")
	check := fs.Bool("check", false, "check the configuration, the key and the output, then exit")
	if err := parseFlags(fs, args, c.stderr, relayUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *configPath == "" {
		return usagef("no configuration: give --config FILE (facegate relay -h shows one)")
	}
	cfg, err := relay.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log_level %q: %w", cfg.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	r, err := relay.New(cfg, relay.Options{Log: log})
	if err != nil {
		return fmt.Errorf("%s: %w", *configPath, err)
	}
	if *check {
		if err := r.CheckOutput(); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "%s: configuration, public key and output are fine\n", *configPath)
		return nil
	}
	return r.Run(ctx)
}
