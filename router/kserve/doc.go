// Package kserve owns Switchyard's KServe v2 / Open Inference Protocol front door: the
// GRPCInferenceService for gRPC, gRPC-Web and Connect clients (served with connect-go), the
// /v2 REST API with its JSON tensor format, classification of inference requests into
// router.Request, relaying to KServe v2 upstreams over gRPC or REST, and the mapping of router
// errors onto gRPC status codes and REST {"error": ...} bodies.
//
// It may import router, backends and the generated protocol code in gen/inference. Nothing
// outside the composition root imports it.
package kserve
