package store

import "strings"

// caseByID builds the "CASE id WHEN ? THEN ? … END" expression that gives a
// column its own value per row in one multi-row UPDATE (the dispatcher's
// claims and recorded answers), with its arguments. The zero value is an
// empty case, ready for Add.
type caseByID struct {
	whens strings.Builder
	args  []any
}

// Add gives row id the value v.
func (c *caseByID) Add(id string, v any) {
	c.whens.WriteString(" WHEN ? THEN ?")
	c.args = append(c.args, id, v)
}

// Len is the number of rows added.
func (c *caseByID) Len() int { return len(c.args) / 2 }

// SQL returns the expression and its arguments. otherwise is the SQL for
// rows not added (a column name keeps its value); "" leaves them NULL,
// which in a WHERE guard matches nothing.
func (c *caseByID) SQL(otherwise string) (string, []any) {
	expr := "CASE id" + c.whens.String()
	if otherwise != "" {
		expr += " ELSE " + otherwise
	}
	return expr + " END", c.args
}
