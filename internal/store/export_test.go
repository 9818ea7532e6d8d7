package store

// The raw statement helpers, for the tests of package store_test that
// check them against GORM.
var (
	Query                = queryRaw
	ScanWithdrawals      = scanWithdrawals
	WithdrawalColumnList = withdrawalColumnList
)

// CaseByID is caseByID for store_test.
type CaseByID = caseByID
