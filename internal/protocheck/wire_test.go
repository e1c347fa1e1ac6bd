package protocheck_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/gen/inference/inferenceconnect"
)

// The tests below compare the generated descriptors with the KServe v2 /
// Triton wire contract written out by hand. Any rename, renumbering, type
// change or streaming change in proto/inference/grpc_service.proto makes them
// fail; that is the point, since such a change breaks compatibility with
// Triton and KServe peers.

const serviceName = "inference.GRPCInferenceService"

func file() protoreflect.FileDescriptor { return inference.File_inference_grpc_service_proto }

func TestPackageAndService(t *testing.T) {
	fd := file()
	if got := fd.Package(); got != "inference" {
		t.Fatalf("package = %q, want %q", got, "inference")
	}
	if n := fd.Services().Len(); n != 1 {
		t.Fatalf("file declares %d services, want 1", n)
	}
	if got := fd.Services().Get(0).FullName(); got != serviceName {
		t.Fatalf("service full name = %q, want %q", got, serviceName)
	}
	if got := inference.GRPCInferenceService_ServiceDesc.ServiceName; got != serviceName {
		t.Errorf("grpc ServiceDesc.ServiceName = %q, want %q", got, serviceName)
	}
	if got := inferenceconnect.GRPCInferenceServiceName; got != serviceName {
		t.Errorf("connect service name = %q, want %q", got, serviceName)
	}
}

func TestMethods(t *testing.T) {
	tests := []struct {
		name         string
		input        protoreflect.FullName
		output       protoreflect.FullName
		clientStream bool
		serverStream bool
		grpcPath     string
		connectPath  string
	}{
		{"ServerLive", "inference.ServerLiveRequest", "inference.ServerLiveResponse", false, false,
			inference.GRPCInferenceService_ServerLive_FullMethodName, inferenceconnect.GRPCInferenceServiceServerLiveProcedure},
		{"ServerReady", "inference.ServerReadyRequest", "inference.ServerReadyResponse", false, false,
			inference.GRPCInferenceService_ServerReady_FullMethodName, inferenceconnect.GRPCInferenceServiceServerReadyProcedure},
		{"ModelReady", "inference.ModelReadyRequest", "inference.ModelReadyResponse", false, false,
			inference.GRPCInferenceService_ModelReady_FullMethodName, inferenceconnect.GRPCInferenceServiceModelReadyProcedure},
		{"ServerMetadata", "inference.ServerMetadataRequest", "inference.ServerMetadataResponse", false, false,
			inference.GRPCInferenceService_ServerMetadata_FullMethodName, inferenceconnect.GRPCInferenceServiceServerMetadataProcedure},
		{"ModelMetadata", "inference.ModelMetadataRequest", "inference.ModelMetadataResponse", false, false,
			inference.GRPCInferenceService_ModelMetadata_FullMethodName, inferenceconnect.GRPCInferenceServiceModelMetadataProcedure},
		{"ModelInfer", "inference.ModelInferRequest", "inference.ModelInferResponse", false, false,
			inference.GRPCInferenceService_ModelInfer_FullMethodName, inferenceconnect.GRPCInferenceServiceModelInferProcedure},
		{"ModelStreamInfer", "inference.ModelInferRequest", "inference.ModelStreamInferResponse", true, true,
			inference.GRPCInferenceService_ModelStreamInfer_FullMethodName, inferenceconnect.GRPCInferenceServiceModelStreamInferProcedure},
	}

	methods := file().Services().ByName("GRPCInferenceService").Methods()
	if methods.Len() != len(tests) {
		t.Errorf("service has %d methods, want %d", methods.Len(), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := methods.ByName(protoreflect.Name(tt.name))
			if md == nil {
				t.Fatalf("method %s missing", tt.name)
			}
			if got := md.Input().FullName(); got != tt.input {
				t.Errorf("input = %s, want %s", got, tt.input)
			}
			if got := md.Output().FullName(); got != tt.output {
				t.Errorf("output = %s, want %s", got, tt.output)
			}
			if got := md.IsStreamingClient(); got != tt.clientStream {
				t.Errorf("client streaming = %v, want %v", got, tt.clientStream)
			}
			if got := md.IsStreamingServer(); got != tt.serverStream {
				t.Errorf("server streaming = %v, want %v", got, tt.serverStream)
			}
			wantPath := "/" + serviceName + "/" + tt.name
			if tt.grpcPath != wantPath {
				t.Errorf("grpc method path = %q, want %q", tt.grpcPath, wantPath)
			}
			if tt.connectPath != wantPath {
				t.Errorf("connect procedure = %q, want %q", tt.connectPath, wantPath)
			}
		})
	}

	// The generated grpc ServiceDesc must agree: one bidi stream, six unary methods.
	desc := inference.GRPCInferenceService_ServiceDesc
	if len(desc.Methods) != 6 || len(desc.Streams) != 1 {
		t.Fatalf("ServiceDesc has %d unary methods and %d streams, want 6 and 1", len(desc.Methods), len(desc.Streams))
	}
	if s := desc.Streams[0]; s.StreamName != "ModelStreamInfer" || !s.ClientStreams || !s.ServerStreams {
		t.Errorf("ServiceDesc stream = %+v, want bidirectional ModelStreamInfer", s)
	}
}

// field is the expected wire shape of one field. oneof is the containing
// oneof's name, empty for a plain field.
type field struct {
	name   protoreflect.Name
	number protoreflect.FieldNumber
	kind   protoreflect.Kind
	card   protoreflect.Cardinality
	oneof  protoreflect.Name
}

const (
	opt = protoreflect.Optional // proto3 singular (implicit presence)
	rep = protoreflect.Repeated
)

const (
	boolK   = protoreflect.BoolKind
	int32K  = protoreflect.Int32Kind
	int64K  = protoreflect.Int64Kind
	uint32K = protoreflect.Uint32Kind
	uint64K = protoreflect.Uint64Kind
	floatK  = protoreflect.FloatKind
	doubleK = protoreflect.DoubleKind
	stringK = protoreflect.StringKind
	bytesK  = protoreflect.BytesKind
	msgK    = protoreflect.MessageKind
)

// Map fields appear as repeated message fields (the synthetic map entry).
func TestMessageFields(t *testing.T) {
	tests := []struct {
		message protoreflect.FullName
		fields  []field
	}{
		{"inference.ServerLiveRequest", nil},
		{"inference.ServerLiveResponse", []field{{"live", 1, boolK, opt, ""}}},
		{"inference.ServerReadyRequest", nil},
		{"inference.ServerReadyResponse", []field{{"ready", 1, boolK, opt, ""}}},
		{"inference.ModelReadyRequest", []field{
			{"name", 1, stringK, opt, ""},
			{"version", 2, stringK, opt, ""},
		}},
		{"inference.ModelReadyResponse", []field{{"ready", 1, boolK, opt, ""}}},
		{"inference.ServerMetadataRequest", nil},
		{"inference.ServerMetadataResponse", []field{
			{"name", 1, stringK, opt, ""},
			{"version", 2, stringK, opt, ""},
			{"extensions", 3, stringK, rep, ""},
		}},
		{"inference.ModelMetadataRequest", []field{
			{"name", 1, stringK, opt, ""},
			{"version", 2, stringK, opt, ""},
		}},
		{"inference.ModelMetadataResponse", []field{
			{"name", 1, stringK, opt, ""},
			{"versions", 2, stringK, rep, ""},
			{"platform", 3, stringK, opt, ""},
			{"inputs", 4, msgK, rep, ""},
			{"outputs", 5, msgK, rep, ""},
			{"properties", 6, msgK, rep, ""},
		}},
		{"inference.ModelMetadataResponse.TensorMetadata", []field{
			{"name", 1, stringK, opt, ""},
			{"datatype", 2, stringK, opt, ""},
			{"shape", 3, int64K, rep, ""},
		}},
		{"inference.InferParameter", []field{
			{"bool_param", 1, boolK, opt, "parameter_choice"},
			{"int64_param", 2, int64K, opt, "parameter_choice"},
			{"string_param", 3, stringK, opt, "parameter_choice"},
			{"double_param", 4, doubleK, opt, "parameter_choice"},
			{"uint64_param", 5, uint64K, opt, "parameter_choice"},
		}},
		// Deliberately not a oneof: the field matching the datatype is used.
		{"inference.InferTensorContents", []field{
			{"bool_contents", 1, boolK, rep, ""},
			{"int_contents", 2, int32K, rep, ""},
			{"int64_contents", 3, int64K, rep, ""},
			{"uint_contents", 4, uint32K, rep, ""},
			{"uint64_contents", 5, uint64K, rep, ""},
			{"fp32_contents", 6, floatK, rep, ""},
			{"fp64_contents", 7, doubleK, rep, ""},
			{"bytes_contents", 8, bytesK, rep, ""},
		}},
		{"inference.ModelInferRequest", []field{
			{"model_name", 1, stringK, opt, ""},
			{"model_version", 2, stringK, opt, ""},
			{"id", 3, stringK, opt, ""},
			{"parameters", 4, msgK, rep, ""},
			{"inputs", 5, msgK, rep, ""},
			{"outputs", 6, msgK, rep, ""},
			{"raw_input_contents", 7, bytesK, rep, ""},
		}},
		{"inference.ModelInferRequest.InferInputTensor", []field{
			{"name", 1, stringK, opt, ""},
			{"datatype", 2, stringK, opt, ""},
			{"shape", 3, int64K, rep, ""},
			{"parameters", 4, msgK, rep, ""},
			{"contents", 5, msgK, opt, ""},
		}},
		{"inference.ModelInferRequest.InferRequestedOutputTensor", []field{
			{"name", 1, stringK, opt, ""},
			{"parameters", 2, msgK, rep, ""},
		}},
		{"inference.ModelInferResponse", []field{
			{"model_name", 1, stringK, opt, ""},
			{"model_version", 2, stringK, opt, ""},
			{"id", 3, stringK, opt, ""},
			{"parameters", 4, msgK, rep, ""},
			{"outputs", 5, msgK, rep, ""},
			{"raw_output_contents", 6, bytesK, rep, ""},
		}},
		{"inference.ModelInferResponse.InferOutputTensor", []field{
			{"name", 1, stringK, opt, ""},
			{"datatype", 2, stringK, opt, ""},
			{"shape", 3, int64K, rep, ""},
			{"parameters", 4, msgK, rep, ""},
			{"contents", 5, msgK, opt, ""},
		}},
		{"inference.ModelStreamInferResponse", []field{
			{"error_message", 1, stringK, opt, ""},
			{"infer_response", 2, msgK, opt, ""},
		}},
	}

	for _, tt := range tests {
		t.Run(string(tt.message), func(t *testing.T) {
			md := findMessage(t, tt.message)
			if got := md.Fields().Len(); got != len(tt.fields) {
				t.Errorf("%s has %d fields, want %d", tt.message, got, len(tt.fields))
			}
			for _, want := range tt.fields {
				fd := md.Fields().ByName(want.name)
				if fd == nil {
					t.Errorf("field %s missing", want.name)
					continue
				}
				if fd.Number() != want.number {
					t.Errorf("field %s number = %d, want %d", want.name, fd.Number(), want.number)
				}
				if fd.Kind() != want.kind {
					t.Errorf("field %s kind = %v, want %v", want.name, fd.Kind(), want.kind)
				}
				if fd.Cardinality() != want.card {
					t.Errorf("field %s cardinality = %v, want %v", want.name, fd.Cardinality(), want.card)
				}
				var oneof protoreflect.Name
				if od := fd.ContainingOneof(); od != nil {
					oneof = od.Name()
				}
				if oneof != want.oneof {
					t.Errorf("field %s oneof = %q, want %q", want.name, oneof, want.oneof)
				}
			}
		})
	}
}

// TestMessageTypedFields pins the element types of message-typed fields,
// including map keys and values.
func TestMessageTypedFields(t *testing.T) {
	const param = "inference.InferParameter"
	tests := []struct {
		message protoreflect.FullName
		field   protoreflect.Name
		isMap   bool
		value   protoreflect.FullName // message type, or map value message type
		scalar  protoreflect.Kind     // map value kind when value is empty
	}{
		{"inference.ModelMetadataResponse", "inputs", false, "inference.ModelMetadataResponse.TensorMetadata", 0},
		{"inference.ModelMetadataResponse", "outputs", false, "inference.ModelMetadataResponse.TensorMetadata", 0},
		{"inference.ModelMetadataResponse", "properties", true, "", stringK},
		{"inference.ModelInferRequest", "parameters", true, param, 0},
		{"inference.ModelInferRequest", "inputs", false, "inference.ModelInferRequest.InferInputTensor", 0},
		{"inference.ModelInferRequest", "outputs", false, "inference.ModelInferRequest.InferRequestedOutputTensor", 0},
		{"inference.ModelInferRequest.InferInputTensor", "parameters", true, param, 0},
		{"inference.ModelInferRequest.InferInputTensor", "contents", false, "inference.InferTensorContents", 0},
		{"inference.ModelInferRequest.InferRequestedOutputTensor", "parameters", true, param, 0},
		{"inference.ModelInferResponse", "parameters", true, param, 0},
		{"inference.ModelInferResponse", "outputs", false, "inference.ModelInferResponse.InferOutputTensor", 0},
		{"inference.ModelInferResponse.InferOutputTensor", "parameters", true, param, 0},
		{"inference.ModelInferResponse.InferOutputTensor", "contents", false, "inference.InferTensorContents", 0},
		{"inference.ModelStreamInferResponse", "infer_response", false, "inference.ModelInferResponse", 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.message)+"."+string(tt.field), func(t *testing.T) {
			fd := findMessage(t, tt.message).Fields().ByName(tt.field)
			if fd == nil {
				t.Fatalf("field missing")
			}
			if fd.IsMap() != tt.isMap {
				t.Fatalf("IsMap = %v, want %v", fd.IsMap(), tt.isMap)
			}
			if tt.isMap {
				if k := fd.MapKey().Kind(); k != stringK {
					t.Errorf("map key kind = %v, want string", k)
				}
				fd = fd.MapValue()
			}
			if tt.value == "" {
				if fd.Kind() != tt.scalar {
					t.Errorf("value kind = %v, want %v", fd.Kind(), tt.scalar)
				}
				return
			}
			if fd.Message() == nil {
				t.Fatalf("value kind = %v, want message %s", fd.Kind(), tt.value)
			}
			if got := fd.Message().FullName(); got != tt.value {
				t.Errorf("value type = %s, want %s", got, tt.value)
			}
		})
	}
}

func TestInferTensorContentsIsNotOneof(t *testing.T) {
	md := findMessage(t, "inference.InferTensorContents")
	if n := md.Oneofs().Len(); n != 0 {
		t.Errorf("InferTensorContents has %d oneofs, want 0", n)
	}
	od := findMessage(t, "inference.InferParameter").Oneofs()
	if od.Len() != 1 || od.Get(0).Name() != "parameter_choice" || od.Get(0).Fields().Len() != 5 {
		t.Errorf("InferParameter must have exactly one oneof parameter_choice with 5 members")
	}
}

func findMessage(t *testing.T, name protoreflect.FullName) protoreflect.MessageDescriptor {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		t.Fatalf("message %s: %v", name, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok || md.ParentFile().Path() != file().Path() {
		t.Fatalf("%s is not a message declared in %s", name, file().Path())
	}
	return md
}
