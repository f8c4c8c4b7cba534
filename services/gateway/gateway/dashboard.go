package gateway

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

// static holds the dashboard: plain HTML, CSS and JavaScript with no build
// step and nothing loaded from elsewhere. GET / serves index.html, and
// GET /dashboard/{file} the files it loads.
//
//go:embed static
var static embed.FS

// dashboardFile is one embedded file, ready to serve.
type dashboardFile struct {
	body        []byte
	contentType string
	etag        string
}

// dashboardCSP keeps the page to its own scripts, styles and API (the
// WebSocket included); thumbnails may come from any https host. The player
// plays the gateway's /ogg, or a blob of it fetched with the API key.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' blob:; " +
	"img-src 'self' https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// loadDashboard reads every embedded file once, at start.
func loadDashboard() (map[string]dashboardFile, error) {
	files := map[string]dashboardFile{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = fiber.MIMEOctetStream
		}
		files[path.Base(p)] = dashboardFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return files, err
}

// dashboardIndex handles GET /: the dashboard's page.
func (s *server) dashboardIndex(c *fiber.Ctx) error {
	return s.sendDashboard(c, "index.html")
}

// dashboardAsset handles GET /dashboard/{file}: the page's script and
// style sheet.
func (s *server) dashboardAsset(c *fiber.Ctx) error {
	name := c.Params("file")
	if name == "index.html" {
		return errorf(CodeNotFound, "no such file")
	}
	return s.sendDashboard(c, name)
}

// sendDashboard answers with one embedded file, revalidated by ETag on
// every load so a new binary's dashboard is seen at once.
func (s *server) sendDashboard(c *fiber.Ctx, name string) error {
	f, ok := s.dashboard[name]
	if !ok {
		return errorf(CodeNotFound, "no such file")
	}
	c.Set(fiber.HeaderETag, f.etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set(fiber.HeaderContentSecurityPolicy, dashboardCSP)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	if etagMatch(c.Get(fiber.HeaderIfNoneMatch), f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.contentType)
	return c.Send(f.body)
}
