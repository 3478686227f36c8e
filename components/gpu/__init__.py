"""GPU capacity for the inference service: the ECS cluster on GPU EC2 instances (``cluster``),
the instance-type catalogue that sizes tasks (``instance_types``) and the instances' user data
(``user_data``)."""

from components.gpu.cluster import GpuEc2Cluster, GpuEc2ClusterArgs, GpuInferenceServiceArgs

__all__ = ["GpuEc2Cluster", "GpuEc2ClusterArgs", "GpuInferenceServiceArgs"]
