// Command facegate is an edge door-access daemon and the tools around it:
// embed, compare and evaluate faces, enroll people, run and watch a door,
// learn from a site's faces, and drive a lock from signed unlocks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/facegate/facegate/camera"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit statuses: done, failed, bad usage.
const (
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: it parses its own flags from args.
type command interface {
	Run(ctx context.Context, args []string) error
}

func newCommand(name string, stdout, stderr io.Writer) command {
	switch name {
	case "embed":
		return &EmbedCommand{stdout: stdout, stderr: stderr}
	case "compare":
		return &CompareCommand{stdout: stdout, stderr: stderr}
	case "eval":
		return &EvalCommand{stdout: stdout, stderr: stderr}
	case "bench":
		return &BenchCommand{stdout: stdout, stderr: stderr}
	case "enroll":
		return &EnrollCommand{stdout: stdout, stderr: stderr}
	case "people":
		return &PeopleCommand{stdout: stdout, stderr: stderr}
	case "remove":
		return &RemoveCommand{stdout: stdout, stderr: stderr}
	case "identify":
		return &IdentifyCommand{stdout: stdout, stderr: stderr}
	case "import":
		return &ImportCommand{stdout: stdout, stderr: stderr}
	case "export":
		return &ExportCommand{stdout: stdout, stderr: stderr}
	case "serve":
		return &ServeCommand{stdout: stdout, stderr: stderr, version: version}
	case "grab":
		return &GrabCommand{stdout: stdout, stderr: stderr}
	case "watch":
		return &WatchCommand{stdout: stdout, stderr: stderr}
	case "events":
		return &EventsCommand{stdout: stdout, stderr: stderr}
	case "train":
		return &TrainCommand{stdout: stdout, stderr: stderr}
	case "heads":
		return &HeadsCommand{stdout: stdout, stderr: stderr}
	case "calibrate":
		return &CalibrateCommand{stdout: stdout, stderr: stderr}
	case "keygen":
		return &KeygenCommand{stdout: stdout, stderr: stderr}
	case "relay":
		return &RelayCommand{stdout: stdout, stderr: stderr}
	}
	return nil
}

const usage = `facegate is an edge door-access daemon: it watches a camera, recognises
enrolled people from one photo each, and publishes unlock decisions over MQTT.

Usage:

	facegate <command> [arguments]

Commands:

	embed     find every face in photos: box, points, quality, liveness, embedding
	compare   say whether the largest faces of two photos are the same person
	eval      measure verification accuracy on an LFW-style pairs file
	bench     time each stage of the face pipeline on a photo or a video

	enroll    add a person to the gallery from one or more photos
	people    list the enrolled people
	remove    delete people and their templates
	identify  say who is in a photo
	import    enroll a folder of people, or load templates exported by another door
	export    write the gallery's templates to a portable file
	grab      save one frame of a camera or video as a photo, to enroll from

	train     learn from the enrolled people how to compare faces (triplet, logistic, chi2)
	heads     list the learned heads and choose the one the door uses
	calibrate set the operating threshold for a target false-accept rate

	serve     run the door: camera, recognition, MQTT decisions
	watch     print a door's decisions as they arrive
	events    print the audit log of decisions kept in the database
	keygen    make the key pair that signs a door's decisions
	relay     act on a door's signed unlocks: run a command or pulse a GPIO line

Run "facegate <command> -h" for a command's flags and examples.
`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	cmd := newCommand(args[0], stdout, stderr)
	if cmd == nil {
		fmt.Fprintf(stderr, "facegate: unknown command %q (run facegate -h for the list)\n", args[0])
		return exitUsage
	}
	err := cmd.Run(ctx, args[1:])
	var ue usageError
	var re reportedError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &re):
		return exitFailed
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "facegate %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "facegate %s: %v\n", args[0], err)
		return exitFailed
	}
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// reportedError is a failure whose every line is already on stderr (one per
// failed file): run sets the exit status and prints nothing more.
type reportedError struct{ error }

// parseFlags parses args into fs, turning flag errors into usage errors and
// writing the usage text only when asked for with -h.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usageText string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageText)
			fmt.Fprintln(stderr, "\nFlags:")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return flag.ErrHelp
		}
		return usageError{err}
	}
	return nil
}

// maxPixelsFlag is --max-pixels, shared by every command that reads photos.
func maxPixelsFlag(fs *flag.FlagSet) *int {
	return fs.Int("max-pixels", camera.DefaultMaxPixels, "refuse images with more pixels than this")
}

// checkMaxPixels refuses a limit no photo could meet.
func checkMaxPixels(n int) error {
	if n < 1 {
		return usagef("--max-pixels %d: must be at least 1", n)
	}
	return nil
}
