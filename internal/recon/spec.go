package recon

// SpecDefault is the default cron spec (Beijing time) of the
// reconciliation job: every half hour from 10:00, when WeChat advises
// fetching the previous day's bills, to 23:30.
const SpecDefault = "*/30 10-23 * * *"
