// Package sim owns the simulated LLM model server that stands in for GPUs in
// Switchyard's tests and demo; it may import only the standard library, the
// Prometheus client, grpc-go, coder/websocket and the generated protocol code
// in gen/inference, never other Switchyard packages.
//
// A Server speaks the OpenAI-compatible HTTP API that vLLM serves
// (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
// /health, /metrics) and exports vLLM's metric names. It also serves the rest
// of the OpenAI surface a router must carry (see below) and a small
// tensor model over KServe v2 gRPC and REST, Triton-style (see below). Its
// latencies come from real mechanisms rather than canned numbers, so a
// routing decision that helps against the simulator helps for the same
// reason against vLLM.
//
// # Scheduling
//
// One engine goroutine runs vLLM-style steps. Before each step it admits
// sequences from a FIFO waiting queue while fewer than MaxRunning run and the
// KV cache can hold the head's blocks; the head blocks the queue, as in vLLM.
// A request arriving while running+waiting >= MaxRunning+MaxWaiting is
// refused with 429. A step prefills every newly admitted sequence and decodes
// one token for every other running sequence, and takes
//
//	step = Σ_new (PrefillBase + PrefillPerToken × uncached_tokens)
//	     + DecodePerToken × (1 + DecodeBatchPenalty × (running − 1))
//
// where the decode term is present only if some sequence is decoding and
// running counts every sequence running in that step. Prefill also yields the
// first output token, so time to first token is queueing plus the step that
// prefills the request, and a request for n tokens then takes n−1 more steps,
// each slowed by whatever else is running. Embedding requests run the same
// way, as prefill-only sequences.
//
// # KV cache
//
// The cache has KVBlocks blocks of BlockSize tokens. A sequence holds
//
//	blocks = ⌈(prompt + generated + 1) / BlockSize⌉
//
// growing as it decodes. Full prompt blocks are named by chained hashes,
// hash(previous block's hash, this block's tokens), so a hash names a whole
// prefix. On admission the longest run of resident prompt blocks is reused,
// capped so at least one token is computed, and counted as prefix-cache hit
// tokens; every prompt token counts as a query. Blocks of running sequences
// are pinned. Finished sequences leave their prompt blocks cached but
// evictable, least recently used first, a prompt's tail before its head. When
// a decoding sequence needs a block and none is free, the most recently
// admitted sequence is preempted and later recomputed, as vLLM does. KV usage
// is pinned blocks ÷ KVBlocks. A request whose prompt plus max tokens could
// never fit the whole cache is refused with 400.
//
// # Tokens and text
//
// The tokenizer is deliberately cheap and deterministic: a run of letters and
// digits becomes pieces of at most 4 bytes, every other non-space rune is one
// token, and whitespace only separates. A chat is rendered as
// "role: content\n" per message in order, so a conversation's prompt keeps
// its earlier turns as a token prefix. Output tokens are short words drawn
// from a generator seeded by Seed and the prompt, so the same prompt yields
// the same text; every request generates exactly its max tokens
// (finish_reason "length").
//
// # Faults
//
// ErrorRate (500 before any work), SpikeRate (SpikeLatency of extra delay
// before queueing) and DropRate (a stream's connection cut after two events)
// are drawn per request from a random source seeded with Seed.
//
// # Responses, Realtime, audio and server-specific paths
//
// POST /v1/responses runs on the engine like a chat: the previous response's
// conversation (previous_response_id), then instructions, then input are
// rendered as chat messages. Non-streaming it answers a response object with
// usage (input_tokens, output_tokens, total_tokens); streaming it sends the
// typed events response.created, response.in_progress,
// response.output_item.added, response.content_part.added, one
// response.output_text.delta per token, response.output_text.done,
// response.content_part.done, response.output_item.done and
// response.completed, each as "event: TYPE" plus a data line with
// sequence_number. Responses are kept (unless store is false) in memory, the
// latest 4096, for GET and DELETE /v1/responses/{id}; another server's id is
// 404, as is an unknown previous_response_id, so a router that loses track of
// which server holds a response shows at once.
//
// GET /v1/realtime?model=… is a WebSocket echo: a session.created event, then
// every message back as it came, frame by frame; the text message
// {"type":"sim.close","code":N,"reason":"…"} makes the server close with
// code N, and response.create is answered as a Realtime server does, with
// response.created, a response.output_text.delta per output token
// (response.max_output_tokens, default 16) and response.done carrying the
// usage: input tokens a quarter of the bytes of the session's text events so
// far, output tokens as many as sent. RealtimeStats reports sessions accepted and the close code the last
// client sent.
//
// POST /v1/audio/transcriptions and /v1/audio/translations read their
// multipart body as a stream, in any field order, and answer a few words
// drawn from the file's hash, with X-Sim-File-Bytes and X-Sim-File-Sha256
// headers; transcriptions report usage of one input token per KiB and one
// output token per word. POST /v1/audio/speech streams 4096 bytes of
// deterministic noise per input token.
//
// POST /tokenize, /detokenize, /v1/rerank and /v1/score answer in vLLM's
// shapes, with the simulator's tokenizer and a relevance equal to the share of
// tokens two texts have in common.
//
// # KServe v2 tensor model
//
// TensorModel (version "1", platform "sim") is Triton's classic add/sub
// example: inputs INPUT0 and INPUT1 of one datatype (INT32, INT64, FP32 or
// FP64) and one shape of any rank give OUTPUT0 = INPUT0+INPUT1 and
// OUTPUT1 = INPUT0−INPUT1 (integers wrap). RegisterKServe serves it over the
// GRPCInferenceService, including Triton's ModelStreamInfer; Handler serves
// the REST API under /v2 with JSON tensors (flat or nested data). A gRPC
// request with raw_input_contents is answered with raw_output_contents,
// typed contents with typed contents. Only the requested outputs are
// returned (both when none are named) and the request id is echoed.
// Request parameters, sequence_id among them, are accepted and ignored: the
// model keeps no state.
//
// Requests compute TensorConcurrency at a time for
//
//	compute = TensorLatency + TensorPerElement × (elements of INPUT0 + INPUT1)
//
// and the rest wait in a FIFO queue; a request finding MaxWaiting already
// queued is refused with RESOURCE_EXHAUSTED (REST 429, as the OpenAI API
// answers a full queue). A request whose client goes away leaves the queue,
// or its compute slot, at once. Errors map to gRPC codes and REST statuses
// as INVALID_ARGUMENT/400 (bad tensors), NOT_FOUND/404 (another model, or a
// version other than "" and "1"), INTERNAL/500 (ErrorRate's injected
// fault), UNAVAILABLE/503 (after Close); REST bodies are {"error": "..."}.
// SpikeRate delays a request by SpikeLatency before it queues.
//
// /metrics adds Triton's families beside vLLM's, labelled model and version:
// nv_inference_request_success, nv_inference_request_failure (reason
// REJECTED, CANCELED, BACKEND or OTHER), nv_inference_count,
// nv_inference_exec_count, the nv_inference_{request,queue,compute_infer}
// _duration_us counters of successful requests, and the gauge
// nv_inference_pending_request_count (queued now). One simulated 80 GiB GPU
// reports nv_gpu_memory_total_bytes, nv_gpu_memory_used_bytes (2 GiB of
// weights plus 256 MiB per queued or running tensor request) and
// nv_gpu_utilization (busy compute slots ÷ TensorConcurrency).
package sim
