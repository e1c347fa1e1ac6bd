// Package openai owns Switchyard's OpenAI-compatible HTTP front door: it peeks at request
// bodies to classify them into router.Request, relays responses and server-sent event streams
// from OpenAI-compatible model servers, and maps router errors onto OpenAI error JSON.
//
// It may import router and backends. Nothing outside the composition root imports it.
package openai
