"""Run inside the throwaway KServe virtualenv (see test_grpc_kserve_client.py), never imported by
the test suite: KServe's grpc_predict_v2.proto and Triton's grpc_service.proto both declare
package ``inference`` and cannot be loaded into one process, and KServe pins protobuf 6 where the
project's dev environment has protobuf 5.

Usage: python kserve_grpc_client.py PORT IN.npz OUT.npz; prints a JSON summary on stdout.
"""

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


async def infer(client, model, tensors, binary, request_id):
    inputs = []
    for name, datatype, array in tensors:
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    request = InferRequest(model_name=model, infer_inputs=inputs, request_id=request_id)
    response = await client.infer(request)
    return response


async def main(port, source, target):
    data = dict(np.load(source))
    client = InferenceGRPCClient(f"127.0.0.1:{port}", channel_args=UNLIMITED, retries=0)
    summary = {
        "live": await client.is_server_live(),
        "ready": await client.is_server_ready(),
        "mlp_ready": await client.is_model_ready("mlp"),
    }
    results = {}
    for binary in (False, True):
        kind = "raw" if binary else "typed"
        for rows in (1, 4):
            x = data[f"mlp{rows}"]
            response = await infer(client, "mlp", [("input", "FP32", x)], binary, f"{kind}{rows}")
            summary[f"id_{kind}{rows}"] = response.id
            results[f"mlp{rows}_{kind}"] = response.outputs[0].as_numpy()
            x = data[f"iris{rows}"]
            response = await infer(client, "classifier", [("X", "FP32", x)], binary, "c")
            by_name = {o.name: o.as_numpy() for o in response.outputs}
            results[f"label{rows}_{kind}"] = by_name["label"]
            results[f"proba{rows}_{kind}"] = by_name["probabilities"]
        response = await infer(
            client, "ints", [("u", "UINT64", data["u"]), ("i", "INT64", data["i"])], binary, "x"
        )
        by_name = {o.name: o.as_numpy() for o in response.outputs}
        summary[f"u_{kind}"] = [int(v) for v in by_name["u_out"]]
        summary[f"i_{kind}"] = [int(v) for v in by_name["i_out"]]
    try:
        await infer(client, "nope", [("input", "FP32", data["mlp1"])], True, "e")
        summary["unknown_model"] = "no error"
    except grpc.aio.AioRpcError as exc:
        summary["unknown_model"] = [exc.code().name, exc.details()]
    await client.close()
    np.savez(target, **results)
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
