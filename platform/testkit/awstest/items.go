package awstest

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item reads the item of table whose key "id" is id, as a user would look
// it up in the table, and fails t when there is none.
func Item(t testing.TB, c *dynamodb.Client, table, id string) map[string]types.AttributeValue {
	t.Helper()
	out, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: &table, Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil || out.Item == nil {
		t.Fatalf("GetItem %s/%s: %v (found: %v)", table, id, err, out != nil && out.Item != nil)
	}
	return out.Item
}

// Text is an attribute's value as text: a string, a number's digits,
// "true" or "false"; "" for a missing attribute or any other type.
func Text(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return "true"
		}
		return "false"
	}
	return ""
}
