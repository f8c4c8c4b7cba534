package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/butakero/butakero/client"
	"github.com/butakero/butakero/events"
)

// The CLI's commands talk to a running Butakero over HTTP with the client
// package: they need no server configuration, only where the server is
// (-server, BUTAKERO_URL) and its API key (-api-key, BUTAKERO_API_KEY).

const defaultServer = "http://localhost:8080"

// cliEnv is what the CLI commands take from the process: the environment
// lookup, the output streams, and whether stderr is a terminal.
type cliEnv struct {
	lookup func(string) (string, bool)
	stdout io.Writer
	stderr io.Writer
	tty    bool
}

// osCLIEnv is the process's own environment and streams.
func osCLIEnv() cliEnv {
	return cliEnv{lookup: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr)}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// clientFlags adds -server and -api-key to fs, defaulting from the
// environment, and returns a function that builds the client.
func clientFlags(fs *flag.FlagSet, env cliEnv) func() *client.Client {
	server, _ := env.lookup("BUTAKERO_URL")
	if server == "" {
		server = defaultServer
	}
	key, _ := env.lookup("BUTAKERO_API_KEY")
	s := fs.String("server", server, "Butakero's base URL (env BUTAKERO_URL)")
	k := fs.String("api-key", key, "API key, when the server has API_KEYS (env BUTAKERO_API_KEY)")
	return func() *client.Client { return &client.Client{BaseURL: *s, APIKey: *k} }
}

// parseInterleaved parses flags that may come before or after the
// positional arguments ("get song -o x.dca") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// cliError drops the client package's "butakero: " prefix, which main
// prints already, from an error of a CLI command.
func cliError(err error) error {
	if err == nil || errors.Is(err, errUsage) {
		return err
	}
	return errors.New(strings.TrimPrefix(err.Error(), "butakero: "))
}

// errUsage is a command line the command cannot run; its usage was printed.
var errUsage = errors.New("bad usage (see butakero help)")

// cmdGet is `butakero get [flags] "<song>"`: request the song, show its
// progress on stderr, and write its DCA to -o (default <song id>.dca). The
// file is written under a temporary name and renamed once complete; the
// path goes to stdout.
func cmdGet(ctx context.Context, args []string, env cliEnv) error {
	return cliError(get(ctx, args, env))
}

func get(ctx context.Context, args []string, env cliEnv) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	newClient := clientFlags(fs, env)
	out := fs.String("o", "", `the file to write (default "<song id>.dca" or ".ogg"; "-" for stdout)`)
	format := fs.String("format", "dca", `what to write: "dca" (Discord's Opus frames) or "ogg" (Ogg Opus, for discord.js and players)`)
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	follow := fs.Bool("follow", false, "play-follow: write the file as it grows, from the first frames, while the song is still being made (a player can read it at once)")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, `usage: butakero get [-o file.dca] [-format dca|ogg] [-follow] [-server URL] [-api-key KEY] "<title or URL>"`)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" || *format != "dca" && *format != "ogg" {
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := newClient()

	op, err := c.Start(ctx, pos[0], "")
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "operation %s\n", op.ID)
	if *follow {
		return playSong(ctx, c, op, *format, *out, env)
	}
	bar := newProgressBar(env.stderr, env.tty)
	final, err := c.Follow(ctx, op.ID, bar.update)
	bar.finish()
	if err != nil {
		return err
	}
	if err := final.Err(); err != nil {
		var oe *client.OperationError
		if errors.As(err, &oe) {
			return fmt.Errorf("%s (%s)", oe.Message, oe.Code)
		}
		return err
	}
	return saveSong(ctx, c, final.SongID, *format, *out, env)
}

// saveSong downloads the song's DCA (format "dca") or Ogg Opus ("ogg") to
// path ("" for <song id>.<format>, "-" for stdout), through a temporary
// file that is renamed only when complete.
//
// songID comes from the server, which the CLI does not trust with its file
// system: an id that is not one Butakero makes (events.ValidSongID: no
// '/', no '.', bounded) is refused before anything is fetched or written,
// so no answer can make the default path "../../x.dca" or "/etc/x.dca".
func saveSong(ctx context.Context, c *client.Client, songID, format, path string, env cliEnv) error {
	if err := events.ValidSongID(songID); err != nil {
		return fmt.Errorf("the server named the song %q, which is not a valid song id; nothing written: %w", songID, err)
	}
	download := c.DownloadDCA
	if format == "ogg" {
		download = c.DownloadOgg
	}
	if path == "-" {
		_, err := download(ctx, songID, env.stdout)
		return err
	}
	if path == "" {
		path = songID + "." + format
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return fmt.Errorf("write the file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	n, err := download(ctx, songID, tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write the file: %w", cerr)
	}
	if err != nil {
		return err
	}
	// CreateTemp makes the file private (0600); the DCA is an ordinary,
	// readable file.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write the file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the file: %w", err)
	}
	fmt.Fprintf(env.stderr, "wrote %s (%s)\n", path, humanBytes(n))
	fmt.Fprintln(env.stdout, path)
	return nil
}

// playSong writes an operation's song to path ("" for <song id>.<format>,
// "-" for stdout) as it is made (client.PlayDCA, PlayOgg): the file grows
// from the first frames on, so a player may read it at once, and is
// removed if the song fails. The song id, which names the default path, is
// checked as saveSong checks it.
func playSong(ctx context.Context, c *client.Client, op client.Operation, format, path string, env cliEnv) error {
	for op.SongID == "" && !op.Done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		if op, err = c.Operation(ctx, op.ID); err != nil {
			return err
		}
	}
	if err := op.Err(); err != nil {
		return err
	}
	if err := events.ValidSongID(op.SongID); err != nil {
		return fmt.Errorf("the server named the song %q, which is not a valid song id; nothing written: %w", op.SongID, err)
	}
	play := c.PlayDCA
	if format == "ogg" {
		play = c.PlayOgg
	}
	if path == "-" {
		_, err := play(ctx, op.ID, env.stdout)
		return err
	}
	if path == "" {
		path = op.SongID + "." + format
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write the file: %w", err)
	}
	fmt.Fprintf(env.stderr, "writing %s as it is made\n", path)
	n, err := play(ctx, op.ID, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write the file: %w", cerr)
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	fmt.Fprintf(env.stderr, "wrote %s (%s)\n", path, humanBytes(n))
	fmt.Fprintln(env.stdout, path)
	return nil
}

// cmdStatus is `butakero status [flags] <operation id>`: the operation's
// state, as text or (-json) as the API's JSON.
func cmdStatus(ctx context.Context, args []string, env cliEnv) error {
	return cliError(status(ctx, args, env))
}

func status(ctx context.Context, args []string, env cliEnv) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	newClient := clientFlags(fs, env)
	asJSON := fs.Bool("json", false, "print the operation as JSON")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: butakero status [-json] [-server URL] [-api-key KEY] <operation id>")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := newClient()
	op, err := c.Operation(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(op)
	}
	rows := [][2]string{
		{"operation", op.ID}, {"query", op.Query}, {"status", op.Status}, {"stage", op.Stage},
		{"song", op.SongID}, {"message", op.Message}, {"error", op.ErrorCode},
		{"attempts", fmt.Sprint(op.Attempts)}, {"created", op.CreatedAt}, {"updated", op.UpdatedAt},
	}
	if op.DCAURL != "" {
		rows = append(rows, [2]string{"dca", strings.TrimRight(c.BaseURL, "/") + op.DCAURL})
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(env.stdout, "%-10s %s\n", r[0], r[1])
		}
	}
	return nil
}

// humanBytes is n as "1.2 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
