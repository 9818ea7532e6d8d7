// Package allinpay is a client of the Allinpay shopoint gateway for the
// multi-detail withdraw (allinpay.shopoint.fundService.withdraw) and its
// status query: the form-encoded envelope, RSA2 signing of the sorted
// k=v&… string, verification of answers, and exact fen ↔ yuan conversion.
package allinpay
