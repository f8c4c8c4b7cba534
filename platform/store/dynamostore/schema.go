package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// table is one table's schema: its name, the variable that names it, and
// its one GSI.
type table struct {
	name, env          string
	index              string
	indexHash, indexSK string
}

func (s *Store) tables() []table {
	return []table{
		{name: s.ops, env: "DYNAMODB_TABLE_NAME_OPERATION", index: BySongIndex, indexHash: songIDAttr, indexSK: createdAttr},
		{name: s.songs, env: "DYNAMODB_TABLE_NAME_SONGS", index: ByTitleIndex, indexHash: catalogAttr, indexSK: titleKeyAttr},
	}
}

// create creates t unless it exists (on-demand capacity, its GSI, TTL on
// expires_at), waits until it is active, and checks its schema. Another
// process creating it at the same time is not an error.
func (s *Store) create(ctx context.Context, t table) error {
	_, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	var rnf *types.ResourceNotFoundException
	if err == nil || !errors.As(err, &rnf) {
		// There (or not knowable): check it rather than create it.
		return s.finish(ctx, t)
	}
	_, err = s.client.CreateTable(ctx, t.createInput())
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("dynamostore: create table %q (%s): %s: %w", t.name, t.env, awsconfig.Reason(err), err)
	}
	return s.finish(ctx, t)
}

// finish waits until t is active, checks its schema and enables its TTL.
func (s *Store) finish(ctx context.Context, t table) error {
	if err := dynamodb.NewTableExistsWaiter(s.client).Wait(ctx, &dynamodb.DescribeTableInput{TableName: &t.name}, createWait); err != nil {
		return fmt.Errorf("dynamostore: table %q (%s) did not become active: %w", t.name, t.env, err)
	}
	if err := s.check(ctx, t); err != nil {
		return err
	}
	ttl, err := s.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &t.name})
	if err != nil {
		return fmt.Errorf("dynamostore: table %q (%s): describe TTL: %w", t.name, t.env, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && (d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		if aws.ToString(d.AttributeName) != ExpiresAttr {
			return fmt.Errorf("dynamostore: table %q (%s) has TTL on %q, want %q", t.name, t.env, aws.ToString(d.AttributeName), ExpiresAttr)
		}
		return nil
	}
	_, err = s.client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &t.name,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(ExpiresAttr), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("dynamostore: table %q (%s): enable TTL on %s: %w", t.name, t.env, ExpiresAttr, err)
	}
	return nil
}

// check describes t and fails, naming the table, its variable and the
// reason, unless it exists, is usable and has the documented key and index.
func (s *Store) check(ctx context.Context, t table) error {
	what := fmt.Sprintf("dynamodb table %q (%s)", t.name, t.env)
	unready := func(reason string) error { return &awsconfig.Unready{Reason: what + ": " + reason} }
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	var rnf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &rnf):
		return unready("the table does not exist")
	case err != nil:
		return awsconfig.NotReady(what, err)
	}
	d := out.Table
	switch d.TableStatus {
	case types.TableStatusActive, types.TableStatusUpdating:
	default:
		return unready("the table is " + strings.ToLower(string(d.TableStatus)))
	}
	if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != KeyAttr {
		return unready(fmt.Sprintf("its key is not the string %q alone (see the README's schema)", KeyAttr))
	}
	for _, gsi := range d.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == t.index {
			return nil
		}
	}
	return unready(fmt.Sprintf("the index %q is missing (see the README's schema)", t.index))
}

// Ping checks that the credentials are usable and that both tables exist,
// are active and have the documented key and index. Its error names the
// table, the variable that names it and the reason.
func (s *Store) Ping(ctx context.Context) error {
	if err := awsconfig.CheckCredentials(ctx, s.aws); err != nil {
		return awsconfig.NotReady("dynamodb", err)
	}
	var errs []error
	for _, t := range s.tables() {
		errs = append(errs, s.check(ctx, t))
	}
	return errors.Join(errs...)
}

// Definitions returns the CreateTable requests AWS_AUTO_CREATE sends for
// tables named operations and songs, keyed by the variable that names
// each (DYNAMODB_TABLE_NAME_OPERATION, DYNAMODB_TABLE_NAME_SONGS). Both
// also get TTL on ExpiresAttr. deploy/ecs's tests hold the Terraform's
// tables to them.
func Definitions(operations, songs string) map[string]*dynamodb.CreateTableInput {
	s := &Store{ops: operations, songs: songs}
	defs := make(map[string]*dynamodb.CreateTableInput)
	for _, t := range s.tables() {
		defs[t.env] = t.createInput()
	}
	return defs
}

// createInput is t's CreateTable request: on-demand capacity, the string
// key KeyAttr, and its GSI with all attributes.
func (t table) createInput() *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   &t.name,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(KeyAttr), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: &t.indexHash, AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: &t.indexSK, AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(KeyAttr), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: &t.index,
			KeySchema: []types.KeySchemaElement{
				{AttributeName: &t.indexHash, KeyType: types.KeyTypeHash},
				{AttributeName: &t.indexSK, KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
}
