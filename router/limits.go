package router

import (
	"net/http"
	"strconv"
)

// ReasonHeaderTooLarge is the Reason of the error CheckHeaders returns; front doors answer it
// with HTTP 431 where their protocol has statuses.
const ReasonHeaderTooLarge = "request_header_too_large"

// CheckHeaders refuses request headers (or gRPC metadata) with more than maxCount field lines
// or more than maxBytes of names and values in all. A limit of 0 or less is off. The error is
// CodeRequestTooLarge with ReasonHeaderTooLarge.
func CheckHeaders(h http.Header, maxBytes, maxCount int) error {
	count, size := 0, 0
	for k, vs := range h {
		count += len(vs)
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	switch {
	case maxCount > 0 && count > maxCount:
		return &Error{Code: CodeRequestTooLarge, Reason: ReasonHeaderTooLarge,
			Message: "Request has " + strconv.Itoa(count) + " header fields; the limit is " + strconv.Itoa(maxCount) + "."}
	case maxBytes > 0 && size > maxBytes:
		return &Error{Code: CodeRequestTooLarge, Reason: ReasonHeaderTooLarge,
			Message: "Request headers hold " + strconv.Itoa(size) + " bytes; the limit is " + strconv.Itoa(maxBytes) + "."}
	}
	return nil
}
