package projection_test

import (
	"testing"

	"github.com/butakero/butakero/platform/projection"
)

func TestNormalizeQuery(t *testing.T) {
	checkNormalize(t, "NormalizeQuery", projection.NormalizeQuery, []normalized{
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
	})
}

func TestNormalizeTitle(t *testing.T) {
	checkNormalize(t, "NormalizeTitle", projection.NormalizeTitle, []normalized{
		{"Canción  ÑANDÚ!", "cancion nandu"},
		{"Beyoncé — Halo (Official Video)", "beyonce halo official video"},
		{"Beyonce\u0301", "beyonce"},
		{"Straße", "strasse"},
		{"ＡＢＣ　ｄｅｆ", "abc def"},
		{"Ærøskøbing", "ærøskøbing"},
		{"...", ""},
		{"  AC/DC: Back in Black  ", "ac dc back in black"},
		{"", ""},
	})
}

// normalized is a normalizer's case: its input and the text it must give.
type normalized struct{ in, want string }

// checkNormalize checks the normalizer f, called name, against tests.
func checkNormalize(t *testing.T, name string, f func(string) string, tests []normalized) {
	t.Helper()
	for _, tc := range tests {
		if got := f(tc.in); got != tc.want {
			t.Errorf("%s(%q) = %q; want %q", name, tc.in, got, tc.want)
		}
	}
}
