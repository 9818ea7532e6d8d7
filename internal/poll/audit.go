package poll

// Audit operations of withdrawal_attempts written by the poller.
const (
	OpQuery = "query"
	// OpCallback audits a callback that changed a withdrawal.
	OpCallback = "callback"
)
