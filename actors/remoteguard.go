package actors

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Guards on protoactor's gRPC server, whoever reaches the actor port.
//
// The pinned protoactor serves three methods: the Receive stream (all
// actor traffic) and two unary diagnostics, ListProcesses and
// GetProcessDiagnostics, whose handlers panic ("implement me"). gRPC does
// not recover handler panics, so one such call ended the node's process.
// refuseUnary answers every unary call Unimplemented instead; nothing in
// Flashstock makes one.
//
// A message in the Receive stream whose protobuf type the node does not
// know makes protoactor's deserializer dereference nil (research:
// shared/research/protoactor.md §0.3), also in the stream's handler
// goroutine. recoverStream turns such a panic into the end of that one
// stream, logged; the sender's endpoint reconnects.

func refuseUnary(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
	return nil, status.Error(codes.Unimplemented, "actors: only the Receive stream is served")
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("actor remoting: a stream's handler panicked; stream closed", "method", info.FullMethod, "panic", r)
				err = status.Error(codes.Internal, "actors: stream failed")
			}
		}()
		return handler(srv, ss)
	}
}
