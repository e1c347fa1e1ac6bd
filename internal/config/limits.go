package config

import "time"

// setLimitDefaults fills the server's unset request limits and client timeouts.
func (s *Server) setLimitDefaults() {
	if s.ReadBodyTimeout == 0 {
		s.ReadBodyTimeout = Duration(time.Minute)
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = Duration(30 * time.Second)
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = 64 << 10
	}
	if s.MaxHeaderCount == 0 {
		s.MaxHeaderCount = 100
	}
	if s.MaxJSONDepth == 0 {
		s.MaxJSONDepth = 64
	}
	if s.MaxTensorElements == 0 {
		s.MaxTensorElements = 1 << 26
	}
	if s.MaxGRPCMessageBytes == 0 {
		s.MaxGRPCMessageBytes = 32 << 20
	}
	if s.MaxConcurrentStreams == 0 {
		s.MaxConcurrentStreams = 250
	}
	if s.GCPercent == 0 {
		s.GCPercent = 400
	}
}

// validateLimits reports limits that are negative or too large to mean anything.
func (s *Server) validateLimits(add func(msg string, path ...any)) {
	for _, l := range []struct {
		key string
		v   int64
	}{
		{"max_header_bytes", int64(s.MaxHeaderBytes)}, {"max_header_count", int64(s.MaxHeaderCount)},
		{"max_json_depth", int64(s.MaxJSONDepth)}, {"max_tensor_elements", s.MaxTensorElements},
		{"max_grpc_message_bytes", s.MaxGRPCMessageBytes}, {"max_concurrent_streams", int64(s.MaxConcurrentStreams)},
	} {
		if l.v < 0 {
			add("must be positive", "server", l.key)
		}
	}
	if s.GCPercent < 25 || s.GCPercent > 10000 {
		add("must be between 25 and 10000", "server", "gc_percent")
	}
	if s.MaxJSONDepth > 10000 {
		add("must be at most 10000", "server", "max_json_depth")
	}
	if s.MaxGRPCMessageBytes > 1<<31-1 {
		add("must be below 2 GiB", "server", "max_grpc_message_bytes")
	}
	if s.MaxConcurrentStreams > 1<<31-1 {
		add("must be below 2^31", "server", "max_concurrent_streams")
	}
}
