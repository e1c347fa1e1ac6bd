// Package admin owns the admin API, switchyard.admin.v1.AdminService: its implementation over
// a replica's live state and the handler that serves it on the admin port as gRPC and as
// REST/JSON through grpc-gateway, behind the admin credentials.
//
// It reads state through functions and small interfaces the caller passes in, once per call,
// so routing tables and pools swapped at runtime show at once. It may import router, backends,
// cluster and the generated gen/switchyard/admin/v1; it must not import internal/app,
// internal/config or any front door.
package admin
