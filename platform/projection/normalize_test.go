package projection_test

import (
	"testing"

	"github.com/butakero/butakero/platform/projection"
)

func TestNormalizeQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Never Gonna Give You Up", "never gonna give you up"},
		{"  never   gonna\tgive you up  ", "never gonna give you up"},
		{"never\u00a0gonna\u3000give", "never gonna give"},
		{"ＡＢＣ　ｄｅｆ", "abc def"},
		{"Straße", "strasse"},
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},
		{"ﬁne", "fine"},
		{"Beyoncé", "beyoncé"},
		{"Beyonce\u0301", "beyoncé"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := projection.NormalizeQuery(tc.in); got != tc.want {
			t.Errorf("NormalizeQuery(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeTitle(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Canción  ÑANDÚ!", "cancion nandu"},
		{"Beyoncé — Halo (Official Video)", "beyonce halo official video"},
		{"Beyonce\u0301", "beyonce"},
		{"Straße", "strasse"},
		{"ＡＢＣ　ｄｅｆ", "abc def"},
		{"Ærøskøbing", "ærøskøbing"},
		{"...", ""},
		{"  AC/DC: Back in Black  ", "ac dc back in black"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := projection.NormalizeTitle(tc.in); got != tc.want {
			t.Errorf("NormalizeTitle(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
