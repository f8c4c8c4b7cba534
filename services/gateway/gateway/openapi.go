package gateway

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the OpenAPI 3.0 document of the gateway's routes, embedded in
// the binary and served at /openapi.json. A test checks that it lists every
// registered route and nothing else.
//
//go:embed openapi.json
var OpenAPI []byte

// openAPI handles GET /openapi.json.
func (s *server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(OpenAPI)
}
