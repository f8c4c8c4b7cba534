package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/butakero/butakero/client"
)

// A bot requests a song, follows it with a progress line per measure,
// and saves the DCA once it is stored.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := &client.Client{BaseURL: "http://localhost:8080", APIKey: os.Getenv("BUTAKERO_API_KEY")}

	// One idempotency key per user request: a retry after a timeout
	// returns the same operation instead of starting a second one.
	op, err := c.Start(ctx, "https://youtu.be/dQw4w9WgXcQ", "request-42")
	if err != nil {
		log.Fatal(err) // an *client.APIError: bad query, key refused, rate limited…
	}
	op, err = c.Follow(ctx, op.ID, func(e client.Event) {
		switch {
		case e.IsProgress():
			fmt.Printf("%s %3.0f%%\n", e.Stage, e.Percent)
		default:
			fmt.Println(e.Kind)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := op.Err(); err != nil {
		log.Fatal(err) // the song could not be made: *client.OperationError says why
	}
	f, err := os.Create(op.SongID + ".dca")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := c.DownloadDCA(ctx, op.SongID, f); err != nil {
		log.Fatal(err)
	}
}

// Browse the whole catalog a page at a time.
func ExampleClient_Songs() {
	ctx := context.Background()
	c := &client.Client{BaseURL: "http://localhost:8080"}
	cursor := ""
	for {
		page, err := c.Songs(ctx, "rick", 50, cursor)
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range page.Songs {
			fmt.Println(s.ID, s.Title, s.Duration())
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
}
