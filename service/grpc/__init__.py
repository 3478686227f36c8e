"""The Open Inference Protocol over gRPC (Triton's ``inference.GRPCInferenceService``).

``server.GrpcServer`` runs it; ``protos`` holds the message classes (also used by the
``config.pbtxt`` reader, which is why this package imports nothing eagerly).
"""
