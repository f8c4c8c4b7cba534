package natsembed_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartRefusesAnOpenListener: a client listener is never started
// without credentials to require.
func TestStartRefusesAnOpenListener(t *testing.T) {
	cases := []struct {
		name string
		auth natsconn.Auth
		want error
	}{
		{"no credentials", natsconn.Auth{}, natsembed.ErrListenWithoutAuth},
		{"a user without a password", natsconn.Auth{User: "butakero"}, nil},
		{"a password without a user", natsconn.Auth{Password: "secret"}, nil},
		{"a token and a user", natsconn.Auth{Token: "t", User: "u", Password: "p"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Auth: tc.auth})
			if err == nil {
				srv.Shutdown()
				t.Fatal("Start succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Start: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestListenerAuthenticates starts a listening server with a token and one
// with a user and password, and dials each over TCP and in process, with
// and without the right credentials.
func TestListenerAuthenticates(t *testing.T) {
	servers := []struct {
		name  string
		auth  natsconn.Auth
		wrong natsconn.Auth
	}{
		{"token", natsconn.Auth{Token: "s3cret-token"}, natsconn.Auth{Token: "guessed"}},
		{"user and password", natsconn.Auth{User: "butakero", Password: "s3cret-password"}, natsconn.Auth{User: "butakero", Password: "guessed"}},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Auth: s.auth})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			url := srv.ClientURL()
			if url == "" {
				t.Fatal("no client URL")
			}
			// Each dial returns a connection or the error it got.
			cases := []struct {
				name string
				dial func() (*nats.Conn, error)
				ok   bool
			}{
				{"TCP without credentials is refused", func() (*nats.Conn, error) { return nats.Connect(url) }, false},
				{"TCP with wrong credentials is refused", func() (*nats.Conn, error) { return nats.Connect(url, s.wrong.Options()...) }, false},
				{"TCP with the credentials connects", func() (*nats.Conn, error) { return nats.Connect(url, s.auth.Options()...) }, true},
				{"natsconn.Connect with the credentials connects", func() (*nats.Conn, error) {
					cfg := config.Config{NATSURL: url, NATSToken: s.auth.Token, NATSUser: s.auth.User, NATSPassword: s.auth.Password}
					return natsconn.Connect(cfg, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
				}, true},
				{"in process, presenting the server's credentials", func() (*nats.Conn, error) { return srv.Connect("test") }, true},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					nc, err := tc.dial()
					if !tc.ok {
						if err == nil {
							nc.Close()
							t.Fatal("connected")
						}
						if !errors.Is(err, nats.ErrAuthorization) {
							t.Errorf("error %v, want an authorization violation", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer nc.Close()
					// Authenticated clients reach JetStream.
					js, err := jetstream.New(nc)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if _, err := js.AccountInfo(ctx); err != nil {
						t.Errorf("JetStream account info: %v", err)
					}
				})
			}
		})
	}
}
