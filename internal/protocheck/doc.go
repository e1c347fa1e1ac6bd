// Package protocheck holds tests that pin the wire contract of the generated protocol code.
package protocheck
