package tfload

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions are the Terraform functions the configuration may call, from
// cty's standard library, which Terraform's own are built on. A call of
// any other fails to load, so a new one is added here knowingly.
var functions = map[string]function.Function{
	"abs":        stdlib.AbsoluteFunc,
	"ceil":       stdlib.CeilFunc,
	"coalesce":   stdlib.CoalesceFunc,
	"compact":    stdlib.CompactFunc,
	"concat":     stdlib.ConcatFunc,
	"contains":   stdlib.ContainsFunc,
	"distinct":   stdlib.DistinctFunc,
	"element":    stdlib.ElementFunc,
	"flatten":    stdlib.FlattenFunc,
	"floor":      stdlib.FloorFunc,
	"format":     stdlib.FormatFunc,
	"formatlist": stdlib.FormatListFunc,
	"join":       stdlib.JoinFunc,
	"jsonencode": stdlib.JSONEncodeFunc,
	"keys":       stdlib.KeysFunc,
	"length":     stdlib.LengthFunc,
	"lookup":     stdlib.LookupFunc,
	"lower":      stdlib.LowerFunc,
	"max":        stdlib.MaxFunc,
	"merge":      stdlib.MergeFunc,
	"min":        stdlib.MinFunc,
	"range":      stdlib.RangeFunc,
	"regexall":   stdlib.RegexAllFunc,
	"replace":    stdlib.ReplaceFunc,
	"slice":      stdlib.SliceFunc,
	"sort":       stdlib.SortFunc,
	"split":      stdlib.SplitFunc,
	"tobool":     stdlib.MakeToFunc(cty.Bool),
	"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
	"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
	"tonumber":   stdlib.MakeToFunc(cty.Number),
	"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"tostring":   stdlib.MakeToFunc(cty.String),
	"trimspace":  stdlib.TrimSpaceFunc,
	"upper":      stdlib.UpperFunc,
	"values":     stdlib.ValuesFunc,
	"zipmap":     stdlib.ZipmapFunc,
}

// synthesize adds to v, a resource's evaluated block, the attributes a
// provider would compute that the configuration reads: ARNs built from
// names (with REGION and ACCOUNT), and placeholders naming the attribute
// for the rest.
func synthesize(r *Resource, v cty.Value) cty.Value {
	attrs := map[string]cty.Value{}
	if v.IsKnown() && !v.IsNull() {
		for k, a := range v.AsValueMap() {
			attrs[k] = a
		}
	}
	placeholder := func(attr string) cty.Value { return cty.StringVal(r.Addr() + "." + attr) }
	// from returns prefix + the attribute src, unknown while src is.
	from := func(prefix, src string) cty.Value {
		s, ok := attrs[src]
		if !ok || !s.IsKnown() || s.IsNull() || s.Type() != cty.String {
			return cty.UnknownVal(cty.String)
		}
		return cty.StringVal(prefix + s.AsString())
	}
	computed := map[string]cty.Value{}
	switch r.Mode + "." + r.Type {
	case "resource.aws_s3_bucket":
		computed["arn"] = from("arn:aws:s3:::", "bucket")
		computed["id"] = from("", "bucket")
	case "resource.aws_dynamodb_table":
		computed["arn"] = from(fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/", Region, Account), "name")
		computed["id"] = from("", "name")
	case "resource.aws_secretsmanager_secret":
		computed["arn"] = from(fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:", Region, Account), "name")
	case "resource.aws_iam_role":
		computed["arn"] = from(fmt.Sprintf("arn:aws:iam::%s:role/", Account), "name")
		computed["id"] = from("", "name")
	case "resource.aws_ecs_cluster":
		computed["arn"] = from(fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/", Region, Account), "name")
	case "data.aws_caller_identity":
		computed["account_id"] = cty.StringVal(Account)
	case "data.aws_region":
		computed["name"] = cty.StringVal(Region)
	case "data.aws_subnet":
		computed["availability_zone"] = from("zone-of-", "id")
	}
	for _, a := range []string{"id", "arn", "name", "json", "dns_name", "private_ip", "value", "result", "arn_suffix"} {
		if _, ok := computed[a]; !ok {
			computed[a] = placeholder(a)
		}
	}
	for k, c := range computed {
		if _, ok := attrs[k]; !ok {
			attrs[k] = c
		}
	}
	return cty.ObjectVal(attrs)
}
