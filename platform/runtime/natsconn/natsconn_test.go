package natsconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// EnvNATSServer names the nats-server binary these tests run; make test
// (scripts/test.sh) installs it under .tools/bin and sets it.
const EnvNATSServer = "BUTAKERO_NATS_SERVER"

// TestConnectAuthenticates runs a real nats-server process for each way a
// cluster may ask clients to prove who they are, and connects through
// natsconn.Connect with the environment a user would set: the right
// settings connect and carry a request, wrong ones are refused by the
// server and never connect, and the refusal is logged.
func TestConnectAuthenticates(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir, "ca")
	otherCA := newPKI(t, dir, "other-ca")
	creds := newOperator(t, dir)

	cases := []struct {
		name    string
		server  string // nats-server configuration besides listen
		env     map[string]string
		wantLog string // "" means: connects
	}{
		{"token", `authorization { token: "s3cret-token" }`,
			map[string]string{"NATS_TOKEN": "s3cret-token"}, ""},
		{"wrong token", `authorization { token: "s3cret-token" }`,
			map[string]string{"NATS_TOKEN": "guess"}, "Authorization Violation"},
		{"no token", `authorization { token: "s3cret-token" }`,
			nil, "Authorization Violation"},
		{"user and password", `authorization { users: [ { user: svc, password: "pa ss" } ] }`,
			map[string]string{"NATS_USER": "svc", "NATS_PASSWORD": "pa ss"}, ""},
		{"wrong password", `authorization { users: [ { user: svc, password: "pa ss" } ] }`,
			map[string]string{"NATS_USER": "svc", "NATS_PASSWORD": "pass"}, "Authorization Violation"},
		{"credentials file", creds.serverConf,
			map[string]string{"NATS_CREDS": creds.file}, ""},
		{"TLS with a client certificate", pki.serverConf(true),
			map[string]string{"NATS_TLS_CA": pki.ca, "NATS_TLS_CERT": pki.clientCert, "NATS_TLS_KEY": pki.clientKey}, ""},
		{"TLS, server's CA only", pki.serverConf(false),
			map[string]string{"NATS_TLS_CA": pki.ca}, ""},
		{"TLS without the client certificate the server verifies", pki.serverConf(true),
			map[string]string{"NATS_TLS_CA": pki.ca}, "tls"},
		{"TLS against another CA", pki.serverConf(false),
			map[string]string{"NATS_TLS_CA": otherCA.ca}, "unknown authority"},
		{"TLS and a token", pki.serverConf(false) + "\n" + `authorization { token: "t0ken" }`,
			map[string]string{"NATS_TLS_CA": pki.ca, "NATS_TOKEN": "t0ken"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := runServer(t, tc.server)
			env := map[string]string{"NATS_URL": "nats://" + addr}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := config.Load(config.FromMap(env))
			if err != nil {
				t.Fatal(err)
			}
			logs := &wait.Output{}
			nc, err := natsconn.Connect(cfg, "natsconn-test", slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()

			if tc.wantLog == "" {
				connected := nc.StatusChanged(nats.CONNECTED)
				if !nc.IsConnected() {
					select {
					case <-connected:
					case <-time.After(10 * time.Second):
						t.Fatalf("not connected after 10s; log:\n%s", logs)
					}
				}
				// A round trip through the server: subscribe, request, answer.
				sub, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = sub.Unsubscribe() }()
				msg, err := nc.Request("echo", []byte("hi"), 5*time.Second)
				if err != nil {
					t.Fatalf("request: %v", err)
				}
				if string(msg.Data) != "hi" {
					t.Fatalf("reply %q, want hi", msg.Data)
				}
				return
			}
			if !logs.Contains(10*time.Second, tc.wantLog) {
				t.Fatalf("no %q logged after 10s; log:\n%s", tc.wantLog, logs)
			}
			if nc.IsConnected() {
				t.Fatalf("connected although the server refuses; log:\n%s", logs)
			}
		})
	}
}

// TestConnectRefusesUnreadableFiles: a credentials, CA or key file that
// cannot be read fails Connect at once, naming the variable.
func TestConnectRefusesUnreadableFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"credentials", map[string]string{"NATS_CREDS": missing}, "NATS_CREDS"},
		{"CA", map[string]string{"NATS_TLS_CA": missing}, "NATS_TLS_CA"},
		{"client key", map[string]string{"NATS_TLS_CERT": missing, "NATS_TLS_KEY": missing}, "NATS_TLS_CERT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["NATS_URL"] = "nats://127.0.0.1:1"
			cfg, err := config.Load(config.FromMap(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			nc, err := natsconn.Connect(cfg, "natsconn-test", slog.New(slog.DiscardHandler))
			if err == nil {
				nc.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

// runServer starts nats-server on a free loopback port with conf and
// returns its address once it accepts connections. It is stopped when t
// ends.
func runServer(t *testing.T, conf string) string {
	t.Helper()
	bin := os.Getenv(EnvNATSServer)
	if bin == "" {
		t.Fatalf("%s is not set: run make test, which installs nats-server into .tools/bin and sets it", EnvNATSServer)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("listen: %s\n%s\n", addr, conf)), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &wait.Output{}
	// After the server is gone (cleanups run last first).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nats-server log:\n%s", logs)
		}
	})
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	exited := wait.Start(t, cmd)
	// nats-server says so once it accepts clients.
	if !logs.Contains(10*time.Second, "Server is ready") {
		select {
		case <-exited:
			t.Fatalf("nats-server exited:\n%s", logs)
		default:
		}
		t.Fatalf("nats-server not ready on %s after 10s:\n%s", addr, logs)
	}
	return addr
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir, name string) pki {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{ca: writePEM(t, dir, name+".pem", "CERTIFICATE", caDER)}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (cert, key string) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kDER, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+"-"+cn+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-"+cn+"-key.pem", "EC PRIVATE KEY", kDER)
	}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// serverConf is nats-server's tls block; verify makes it require a client
// certificate signed by the CA.
func (p pki) serverConf(verify bool) string {
	return fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: %t, timeout: 2 }", p.serverCert, p.serverKey, p.ca, verify)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// operator is decentralized (JWT) authentication: an operator, one account
// preloaded into the server's memory resolver, and a user's credentials
// file as nsc would write it.
type operator struct {
	serverConf string
	file       string
}

func newOperator(t *testing.T, dir string) operator {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// keyPair creates a key pair with create and returns it and its public key.
	keyPair := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
		t.Helper()
		kp, err := create()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		return kp, pub
	}
	okp, opub := keyPair(nkeys.CreateOperator)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "test-operator"
	ojwt, err := oc.Encode(okp)
	must(err)

	akp, apub := keyPair(nkeys.CreateAccount)
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "butakero"
	ajwt, err := ac.Encode(okp)
	must(err)

	ukp, upub := keyPair(nkeys.CreateUser)
	useed, err := ukp.Seed()
	must(err)
	uc := jwt.NewUserClaims(upub)
	uc.Name = "svc"
	ujwt, err := uc.Encode(akp)
	must(err)
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	must(err)
	file := filepath.Join(dir, "svc.creds")
	must(os.WriteFile(file, creds, 0o600))
	return operator{
		serverConf: fmt.Sprintf("operator: %q\nresolver: MEMORY\nresolver_preload: { %s: %q }", ojwt, apub, ajwt),
		file:       file,
	}
}
