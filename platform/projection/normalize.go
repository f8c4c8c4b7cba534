package projection

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// NormalizeQuery is the form of free text under which its answer is
// cached: Unicode NFKC (so full-width and compatibility characters match
// their plain forms), case folded, with runs of white space collapsed to
// one space and none at either end. "  Never Gonna  GIVE you up " and
// "never gonna give you up" are one query. Diacritics stay: a search for
// "Beyoncé" is not one for "Beyonce".
func NormalizeQuery(text string) string {
	s := norm.NFKC.String(text)
	s = cases.Fold().String(s)
	// Folding may produce characters NFKC would change again.
	s = norm.NFKC.String(s)
	return strings.Join(strings.Fields(s), " ")
}

// NormalizeTitle is the form titles and channels are searched in: NFKC,
// case folded (ß → ss), diacritics removed (é → e, ñ → n), punctuation
// and symbols dropped, runs of spaces collapsed, so "Canción  ÑANDÚ!" and
// "cancion nandu" match. Every catalog store indexes this form.
func NormalizeTitle(s string) string {
	// A transform.Chain keeps state: one per call, as cases.Caser.
	strip := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	s, _, err := transform.String(strip, NormalizeQuery(s))
	if err != nil {
		return ""
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
			space = false
		case !space && b.Len() > 0:
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimRight(b.String(), " ")
}
