package gateway

import (
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		name          string
		header        string
		size          int64
		start, length int64
		partial       bool
		unsatisfiable bool
	}{
		{name: "no header", header: "", size: 10, length: 10},
		{name: "closed", header: "bytes=2-5", size: 10, start: 2, length: 4, partial: true},
		{name: "spaces tolerated", header: " bytes = 2 - 5 ", size: 10, start: 2, length: 4, partial: true},
		{name: "unit case-insensitive", header: "Bytes=2-5", size: 10, start: 2, length: 4, partial: true},
		{name: "single byte", header: "bytes=9-9", size: 10, start: 9, length: 1, partial: true},
		{name: "open end", header: "bytes=7-", size: 10, start: 7, length: 3, partial: true},
		{name: "end clamped", header: "bytes=7-100", size: 10, start: 7, length: 3, partial: true},
		{name: "suffix", header: "bytes=-3", size: 10, start: 7, length: 3, partial: true},
		{name: "suffix longer than blob", header: "bytes=-30", size: 10, start: 0, length: 10, partial: true},
		{name: "start at size", header: "bytes=10-", size: 10, unsatisfiable: true},
		{name: "start past size", header: "bytes=11-20", size: 10, unsatisfiable: true},
		{name: "empty suffix", header: "bytes=-0", size: 10, unsatisfiable: true},
		{name: "any range of an empty blob", header: "bytes=0-", size: 0, unsatisfiable: true},
		{name: "suffix of an empty blob", header: "bytes=-1", size: 0, unsatisfiable: true},
		{name: "other unit ignored", header: "items=0-1", size: 10, length: 10},
		{name: "several ranges ignored", header: "bytes=0-1,3-4", size: 10, length: 10},
		{name: "reversed ignored", header: "bytes=5-2", size: 10, length: 10},
		{name: "signed ignored", header: "bytes=+1-2", size: 10, length: 10},
		{name: "no dash ignored", header: "bytes=5", size: 10, length: 10},
		{name: "junk ignored", header: "bytes=a-b", size: 10, length: 10},
		{name: "overflow ignored", header: "bytes=99999999999999999999-", size: 10, length: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, length, partial, err := parseRange(tc.header, tc.size)
			if tc.unsatisfiable {
				if err != errUnsatisfiable {
					t.Fatalf("err %v, want errUnsatisfiable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if start != tc.start || length != tc.length || partial != tc.partial {
				t.Errorf("got (%d, %d, %v), want (%d, %d, %v)", start, length, partial, tc.start, tc.length, tc.partial)
			}
		})
	}
}

func TestSongQuery(t *testing.T) {
	tests := []struct {
		name, raw, want string
		bad             bool
	}{
		{name: "title", raw: "rick astley", want: "rick astley"},
		{name: "trimmed", raw: "\t rick \n", want: "rick"},
		{name: "blank", raw: " \t ", bad: true},
		{name: "tab inside", raw: "a\tb", bad: true},
		{name: "C1 control", raw: "a\u0085b", bad: true},
		{name: "invalid UTF-8", raw: "a\xffb", bad: true},
		{name: "replacement character", raw: "a\ufffdb", bad: true},
		{name: "512 bytes", raw: strings.Repeat("é", 256), want: strings.Repeat("é", 256)},
		{name: "513 bytes", raw: strings.Repeat("é", 256) + "a", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := songQuery(tc.raw)
			if tc.bad {
				if e, ok := err.(*Error); !ok || e.Code != CodeBadRequest {
					t.Fatalf("err %v, want a bad_request *Error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("songQuery(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
		})
	}
}
