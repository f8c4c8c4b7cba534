// Package mediahosts is the ALLOWED_MEDIA_HOSTS policy: which URLs a
// direct media song may name, and which addresses fetching one may reach.
// The resolver applies it to the URL a user gives; the fetcher applies it
// again to that URL, to every URL a redirect names, and to every address
// it connects to.
//
// An entry is one of
//
//	host        that host on its scheme's default port: 80 for http, 443 for https
//	host:port   that host on that port only, over http or https
//	host:*      that host on any port (loopback test servers, development)
//
// where host is a DNS name or an IP address, matched exactly: an entry for
// example.com admits neither www.example.com nor example.com. (with a
// trailing dot), and one for 127.0.0.1 admits neither localhost nor
// [::ffff:127.0.0.1]. IPv6 addresses are written bare or in brackets
// (::1, [::1], [::1]:8080, [::1]:*).
//
// A host name reaches public addresses only: a loopback, private,
// link-local, unspecified, multicast or otherwise non-public address (see
// Internal) is reached only through an entry that is that IP address
// itself. So "localhost" or a name whose DNS answers 10.0.0.5 is refused
// at connection time even when listed; list 127.0.0.1 or 10.0.0.5
// instead. DNS then cannot turn an allowed name into an internal one.
//
// The functions take the list as config.Config.AllowedMediaHosts holds it:
// entries in the canonical form Parse returns.
package mediahosts

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// anyPort is the port of an entry that admits every port.
const anyPort = "*"

// Parse reads a comma-separated ALLOWED_MEDIA_HOSTS value into its
// canonical entries: lower case, an IP address in its usual spelling
// (bracketed when it carries a port), blanks dropped. It refuses an entry
// with a scheme, a path, a user name, an empty host or a port outside
// 1–65535, naming the first such entry.
func Parse(s string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.ToLower(strings.TrimSpace(raw))
		if raw == "" {
			continue
		}
		e, err := canonical(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", raw, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func canonical(e string) (string, error) {
	if strings.ContainsAny(e, "/@?#\\ ") {
		return "", fmt.Errorf("want host, host:port or host:*, without a scheme or a path")
	}
	host, port := e, ""
	if h, p, err := net.SplitHostPort(e); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		host = e[1 : len(e)-1]
	}
	if host == "" {
		return "", fmt.Errorf("no host")
	}
	if !isIP(host) && !validName(host) {
		return "", fmt.Errorf("want host, host:port or host:*, with an ASCII host name (punycode) or an IP address")
	}
	host = canonicalHost(host)
	if port == "" {
		return host, nil
	}
	if port != anyPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", fmt.Errorf("port %q: want 1 to 65535 or *", port)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// canonicalHost lower-cases host and spells an IP address the usual way
// (netip's), so that entries and URLs compare as strings. A zone, a
// trailing dot or an unusual spelling of a number (127.1, 0x7f.0.0.1)
// makes a name, which then matches only that same spelling, and never
// reaches an internal address (see Reachable).
func canonicalHost(host string) string {
	host = strings.ToLower(host)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		return ip.String()
	}
	return host
}

// validName reports whether name has only the characters of an ASCII DNS
// name.
func validName(name string) bool {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == ""
}

// defaultPorts are the schemes a media URL may use, with their ports.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// AllowsURL reports whether u may be fetched: scheme http or https, no
// user name or password, and a host and port some entry of list admits.
func AllowsURL(list []string, u *url.URL) bool {
	def, ok := defaultPorts[strings.ToLower(u.Scheme)]
	if !ok || u.User != nil || u.Hostname() == "" {
		return false
	}
	host := canonicalHost(u.Hostname())
	port := u.Port()
	if port == "" {
		port = def
	}
	for _, e := range list {
		switch e {
		case net.JoinHostPort(host, port), net.JoinHostPort(host, anyPort):
			return true
		case host:
			if port == def {
				return true
			}
		}
	}
	return false
}

// Names reports whether some entry of list names host, on whatever port:
// whether a URL on host is meant as a direct media URL, and whether a
// connection to host may be made at all.
func Names(list []string, host string) bool {
	host = canonicalHost(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	for _, e := range list {
		h := e
		if eh, _, err := net.SplitHostPort(e); err == nil {
			h = eh
		}
		if h == host {
			return true
		}
	}
	return false
}

// Reachable reports whether a connection for a URL on host (as the URL
// spells it, an allowed one) may go to the address ip that host resolved
// to. A public address may; an internal one (Internal) only when host is
// that very address, written as an IP in the URL and in list.
func Reachable(list []string, host string, ip netip.Addr) bool {
	if !Names(list, host) {
		return false
	}
	if !Internal(ip) {
		return true
	}
	literal, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && literal.Zone() == "" && literal.Unmap() == ip.Unmap().WithZone("")
}

// nonPublic are the ranges Internal refuses besides those netip names.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: any IPv4 address, private ones too
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
}

// Internal reports whether ip is not a public unicast address: loopback,
// private (RFC 1918, fc00::/7), link-local (169.254.0.0/16, where cloud
// metadata services answer, and fe80::/10), unspecified, multicast, or one
// of the other special-purpose ranges above. An IPv4-mapped IPv6 address
// counts as its IPv4 address.
func Internal(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// DialContext is an http.Transport's DialContext that dials with d and
// connects only to the addresses list lets the dialed host reach
// (Reachable). The check runs for each address the host resolves to,
// before the connection is made: a refused one is never contacted, and
// the dialer goes on to the next. A refusal's error wraps refused.
func DialContext(list []string, d net.Dialer, refused error) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := d
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Reachable(list, host, ap.Addr()) {
				return fmt.Errorf("%w: %s at %s", refused, host, address)
			}
			return nil
		}
		return d.DialContext(ctx, network, addr)
	}
}
