package mediahosts_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/media/mediahosts"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "names and addresses, trimmed and lower-cased", in: " CDN.Example.com, ,127.0.0.1",
			want: []string{"cdn.example.com", "127.0.0.1"}},
		{name: "ports", in: "cdn.example.com:8443,127.0.0.1:*", want: []string{"cdn.example.com:8443", "127.0.0.1:*"}},
		{name: "IPv6 bare, bracketed and with a port", in: "::1,[0:0::2],[::1]:8080,[FD00::1]:*",
			want: []string{"::1", "::2", "[::1]:8080", "[fd00::1]:*"}},
		{name: "scheme", in: "https://cdn.example.com", wantErr: `entry "https://cdn.example.com"`},
		{name: "path", in: "cdn.example.com/media", wantErr: "without a scheme or a path"},
		{name: "user", in: "me@cdn.example.com", wantErr: "without a scheme or a path"},
		{name: "port zero", in: "cdn.example.com:0", wantErr: "port"},
		{name: "port too big", in: "cdn.example.com:65536", wantErr: "port"},
		{name: "port not a number", in: "cdn.example.com:http", wantErr: "port"},
		{name: "port with a sign", in: "cdn.example.com:+80", wantErr: "port"},
		{name: "no host", in: ":8080", wantErr: "no host"},
		{name: "wildcard host", in: "*.example.com", wantErr: "ASCII host name"},
		{name: "IPv6 zone", in: "fe80::1%eth0", wantErr: "ASCII host name"},
		{name: "non-ASCII name", in: "bücher.example", wantErr: "punycode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mediahosts.Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAllowsURL(t *testing.T) {
	list, err := mediahosts.Parse("cdn.example.com,media.example.com:8443,127.0.0.1:9000,10.0.0.5:*,::1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		url  string
		want bool
	}{
		{"bare host, https default port", "https://cdn.example.com/a.mp3", true},
		{"bare host, http default port", "http://cdn.example.com/a.mp3", true},
		{"bare host, default port written", "https://cdn.example.com:443/a.mp3", true},
		{"bare host, upper case", "HTTPS://CDN.EXAMPLE.COM/a.mp3", true},
		{"bare host, another port", "http://cdn.example.com:8080/a.mp3", false},
		{"bare host, the other scheme's port", "http://cdn.example.com:443/a.mp3", false},
		{"subdomain", "https://www.cdn.example.com/a.mp3", false},
		{"suffix lookalike", "https://cdn.example.com.evil.example/a.mp3", false},
		{"trailing dot", "https://cdn.example.com./a.mp3", false},
		{"host:port, that port", "https://media.example.com:8443/a.mp3", true},
		{"host:port, over http", "http://media.example.com:8443/a.mp3", true},
		{"host:port, default port", "https://media.example.com/a.mp3", false},
		{"loopback with its port", "http://127.0.0.1:9000/a.mp3", true},
		{"loopback, another port", "http://127.0.0.1:9001/a.mp3", false},
		{"loopback, default port", "http://127.0.0.1/a.mp3", false},
		{"host:*, any port", "http://10.0.0.5:6379/", true},
		{"bare IPv6", "http://[::1]/a.mp3", true},
		{"bare IPv6, another spelling", "http://[0:0:0::1]/a.mp3", true},
		{"bare IPv6, another port", "http://[::1]:9000/a.mp3", false},
		{"IPv4-mapped spelling of an allowed address", "http://[::ffff:127.0.0.1]:9000/a.mp3", false},
		{"localhost", "http://localhost:9000/a.mp3", false},
		{"short IP", "http://127.1:9000/a.mp3", false},
		{"user info", "http://user@127.0.0.1:9000/a.mp3", false},
		{"other scheme", "ftp://127.0.0.1:9000/a.mp3", false},
		{"no host", "http:///a.mp3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := mediahosts.AllowsURL(list, u); got != tc.want {
				t.Fatalf("AllowsURL(%s) = %v; want %v", tc.url, got, tc.want)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	list, err := mediahosts.Parse("cdn.example.com,localhost:*,127.0.0.1:*,[fd00::7]:443")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		host string
		ip   string
		want bool
	}{
		{"allowed name, public address", "cdn.example.com", "93.184.216.34", true},
		{"allowed name, public IPv6 address", "cdn.example.com", "2606:2800:220:1::1", true},
		{"allowed name resolving to loopback", "cdn.example.com", "127.0.0.1", false},
		{"allowed name resolving to a private address", "cdn.example.com", "10.1.2.3", false},
		{"allowed name resolving to cloud metadata", "cdn.example.com", "169.254.169.254", false},
		{"allowed name resolving to carrier-grade NAT", "cdn.example.com", "100.64.0.1", false},
		{"allowed name resolving to an IPv4-mapped private address", "cdn.example.com", "::ffff:192.168.1.1", false},
		{"allowed name resolving to NAT64", "cdn.example.com", "64:ff9b::a00:1", false},
		{"listed localhost still refused", "localhost", "127.0.0.1", false},
		{"listed localhost, IPv6", "localhost", "::1", false},
		{"listed loopback address", "127.0.0.1", "127.0.0.1", true},
		{"listed private IPv6 address", "fd00::7", "fd00::7", true},
		{"listed private IPv6 address, bracketed", "[fd00::7]", "fd00::7", true},
		{"an address not listed", "10.0.0.9", "10.0.0.9", false},
		{"a host not listed, public address", "evil.example", "93.184.216.34", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mediahosts.Reachable(list, tc.host, netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Fatalf("Reachable(%s, %s) = %v; want %v", tc.host, tc.ip, got, tc.want)
			}
		})
	}
}

// TestDialContext: a listener on loopback is reached through the dialer
// only when the list names its address; by name (localhost) or unlisted
// it is refused with the caller's error, and never accepts a connection.
func TestDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	refused := errors.New("refused")
	ctx := context.Background()
	for _, tc := range []struct {
		name, list, addr string
		want             bool
	}{
		{"listed address", "127.0.0.1:" + port, "127.0.0.1:" + port, true},
		{"listed name resolving to loopback", "localhost:*", "localhost:" + port, false},
		{"address not listed", "cdn.example.com", "127.0.0.1:" + port, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := mediahosts.Parse(tc.list)
			if err != nil {
				t.Fatal(err)
			}
			c, err := mediahosts.DialContext(list, net.Dialer{}, refused)(ctx, "tcp", tc.addr)
			if !tc.want {
				if !errors.Is(err, refused) {
					t.Fatalf("dial %s = %v; want the refusal", tc.addr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			<-accepted
		})
	}
	if n := len(accepted); n != 0 {
		t.Errorf("%d connections accepted beyond the listed dial", n)
	}
}

func TestInternal(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true},
		{"10.0.0.1", true}, {"172.16.0.1", true}, {"192.168.0.1", true}, {"fd12::1", true},
		{"169.254.169.254", true}, {"fe80::1", true},
		{"0.0.0.0", true}, {"::", true}, {"0.1.2.3", true},
		{"224.0.0.1", true}, {"ff02::1", true}, {"255.255.255.255", true},
		{"100.100.100.100", true}, {"198.18.0.1", true},
		{"::ffff:10.0.0.1", true}, {"::127.0.0.1", true},
		{"8.8.8.8", false}, {"93.184.216.34", false}, {"2606:4700::1111", false}, {"::ffff:8.8.8.8", false},
	} {
		if got := mediahosts.Internal(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Internal(%s) = %v; want %v", tc.ip, got, tc.want)
		}
	}
}
