package gateway

import "testing"

func TestOrigins(t *testing.T) {
	tests := []struct {
		name      string
		allowed   []string
		publicURL string
		listen    string
		ok        []string // Origin headers admitted to the WebSocket
		refused   []string
	}{
		{name: "wildcard listen address: loopback names", listen: ":8080",
			ok:      []string{"", "http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080", "HTTP://LOCALHOST:8080"},
			refused: []string{"http://localhost:8081", "https://localhost:8080", "http://evil.example:8080", "null", "not a url"}},
		{name: "unspecified IP is a wildcard", listen: "0.0.0.0:8080", ok: []string{"http://localhost:8080"}},
		{name: "loopback listen address", listen: "127.0.0.1:9000",
			ok: []string{"http://127.0.0.1:9000", "http://localhost:9000"}, refused: []string{"http://[::1]:9000"}},
		{name: "named listen address", listen: "gw.internal:8080",
			ok: []string{"http://gw.internal:8080"}, refused: []string{"http://localhost:8080"}},
		{name: "port 80 is the default", listen: "gw.internal:80",
			ok: []string{"http://gw.internal", "http://gw.internal:80"}},
		{name: "PUBLIC_URL replaces the listen address", publicURL: "https://butakero.example/dashboard", listen: ":8080",
			ok: []string{"https://butakero.example", "https://butakero.example:443"}, refused: []string{"http://localhost:8080", "http://butakero.example"}},
		{name: "ALLOWED_ORIGINS add to them", allowed: []string{"https://app.example:8443"}, listen: ":8080",
			ok: []string{"https://app.example:8443", "http://localhost:8080"}, refused: []string{"https://app.example"}},
		{name: "any origin", allowed: []string{"*"}, listen: ":8080", ok: []string{"https://evil.example"}},
		{name: "no address (a test app)", refused: []string{"http://localhost:8080"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := newOrigins(tc.allowed, tc.publicURL, tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			for _, origin := range tc.ok {
				if !o.allowSocket(origin) {
					t.Errorf("Origin %q refused, want admitted (own %q)", origin, o.own)
				}
			}
			for _, origin := range tc.refused {
				if o.allowSocket(origin) {
					t.Errorf("Origin %q admitted, want refused (own %q)", origin, o.own)
				}
			}
		})
	}
	for _, bad := range []string{"butakero.example", "ftp://butakero.example", "https://user@butakero.example", "https://"} {
		if _, err := newOrigins(nil, bad, ":8080"); err == nil {
			t.Errorf("PUBLIC_URL %q accepted", bad)
		}
	}
}
