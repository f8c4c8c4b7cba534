package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDashboardFiles checks the embedded dashboard is served, open even
// with API keys, with its security headers and revalidation.
func TestDashboardFiles(t *testing.T) {
	h := start(t, "key-one")
	tests := []struct {
		name, path, contentType, contains string
	}{
		{name: "page", path: "/", contentType: "text/html", contains: `<script src="/dashboard/app.js"`},
		{name: "script", path: "/dashboard/app.js", contentType: "text/javascript", contains: "/v1/operations"},
		{name: "style sheet", path: "/dashboard/app.css", contentType: "text/css", contains: ".stage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, tc.path, nil)
			if r.status != 200 {
				t.Fatalf("status %d, want 200 (body %.200s)", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if !strings.Contains(string(r.body), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			for _, hd := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
				if r.header.Get(hd) == "" {
					t.Errorf("no %s header", hd)
				}
			}
			if csp := r.header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "connect-src 'self'") {
				t.Errorf("Content-Security-Policy %q, want same-origin connections and no inline code", csp)
			}
			again := h.do(t, http.MethodGet, tc.path, map[string]string{"If-None-Match": r.header.Get("ETag")})
			if again.status != http.StatusNotModified || len(again.body) != 0 {
				t.Errorf("revalidation: %d with %d bytes, want 304 and no body", again.status, len(again.body))
			}
		})
	}
	for _, path := range []string{"/dashboard/nope.js", "/dashboard/index.html", "/dashboard/..%2fgateway.go"} {
		t.Run("unknown "+path, func(t *testing.T) {
			wantError(t, h.do(t, http.MethodGet, path, nil), 404, "not_found")
		})
	}
}

// TestSocketKeyInQuery checks the events WebSocket, and only it, takes the
// API key from ?api_key= (browsers cannot set its headers).
func TestSocketKeyInQuery(t *testing.T) {
	h := start(t, "key-one")
	opID, _ := publishHistory(t, h.env, "rick astley", resolved)
	withKey := func(key string) string { return "?api_key=" + url.QueryEscape(key) }
	sockets := []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{name: "key in the query", query: withKey("key-one"), status: 101},
		{name: "key in a header", header: http.Header{"X-API-Key": {"key-one"}}, status: 101},
		{name: "wrong key in the query", query: withKey("key-two"), status: 401},
		{name: "a wrong header wins over the query", query: withKey("key-one"), header: http.Header{"X-API-Key": {"key-two"}}, status: 401},
		{name: "no key", status: 401},
	}
	for _, tc := range sockets {
		t.Run(tc.name, func(t *testing.T) {
			wantDial(t, wsURL(h, opID)+tc.query, tc.header, tc.status, "unauthorized")
		})
	}
	// Elsewhere the query carries no key.
	for _, path := range []string{
		"/v1/songs" + withKey("key-one"),
		"/v1/operations/" + opID + withKey("key-one"),
		"/v1/operations/" + opID + "/events" + withKey("key-one"), // not an upgrade
		"/api/audio/status?operation_id=" + opID + "&api_key=key-one",
	} {
		t.Run("not a socket: "+path, func(t *testing.T) {
			wantError(t, h.do(t, http.MethodGet, path, nil), 401, "unauthorized")
		})
	}
}
