// Package parsetree walks the parse trees of text/template, for the code
// of package template that reads them: the function calls a template
// makes, and the fast path's checks of what it can run.
package parsetree

import "text/template/parse"

// Inspect calls visit for n and, while visit returns true, for the nodes
// inside it, depth first, as [go/ast.Inspect] does for Go syntax.
func Inspect(n parse.Node, visit func(parse.Node) bool) {
	if !visit(n) {
		return
	}
	list := func(l *parse.ListNode) {
		if l != nil {
			Inspect(l, visit)
		}
	}
	pipe := func(p *parse.PipeNode) {
		if p != nil {
			Inspect(p, visit)
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			Inspect(c, visit)
		}
	case *parse.ActionNode:
		pipe(n.Pipe)
	case *parse.IfNode:
		pipe(n.Pipe)
		list(n.List)
		list(n.ElseList)
	case *parse.RangeNode:
		pipe(n.Pipe)
		list(n.List)
		list(n.ElseList)
	case *parse.WithNode:
		pipe(n.Pipe)
		list(n.List)
		list(n.ElseList)
	case *parse.TemplateNode:
		pipe(n.Pipe)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			Inspect(c, visit)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			Inspect(a, visit)
		}
	case *parse.ChainNode:
		Inspect(n.Node, visit)
	}
}
