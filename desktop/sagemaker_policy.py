"""The desktop role's own SageMaker policy (``sagemakerAccess: scoped``, the default).

What the roads from the desktop to SageMaker need, and nothing more: ``@remote`` functions,
``ModelTrainer``/``Estimator.fit()``, processing, batch transform, tuning, models and
endpoints of this account and region, experiments, and the logs of all of them. Every job
runs as the desktop's own role (the only role it may pass), so the same policy is also
what the job itself may do: pull its image, write its logs and metrics, reach the VPC.

It replaces AWS's ``AmazonSageMakerFullAccess`` (``sagemakerAccess: full``), which allows
``sagemaker:*`` on every resource, passing any role of the account to SageMaker, Cognito
user pools, S3 buckets named ``*sagemaker*``, Glue, Athena and more.

Pure data: no Pulumi here, so the tests evaluate it as IAM would (tests/iam_evaluation.py).
"""

from __future__ import annotations

#: AWS's Deep Learning Containers registry account, per partition (the images ``@remote``,
#: ``ModelTrainer`` and ``Estimator`` default to). A few opt-in regions of ``aws`` have their
#: own account (e.g. ap-east-1, me-south-1); images there come from this account's
#: repositories or the pull is refused.
DLC_ACCOUNT = {"aws": "763104351884", "aws-cn": "727897471807", "aws-us-gov": "442386744353"}

#: The service principal SageMaker assumes the role as (the same name in every partition).
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"

# Each action, and why the roads above need it.
JOB_ACTIONS = (
    # @remote, ModelTrainer and Estimator.fit(): start a training job, follow it, stop it,
    # keep a warm pool alive (UpdateTrainingJob's KeepAlivePeriodInSeconds).
    "sagemaker:CreateTrainingJob",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:StopTrainingJob",
    "sagemaker:UpdateTrainingJob",
    # Processing (sagemaker.processing, @remote's "pre-processing" examples).
    "sagemaker:CreateProcessingJob",
    "sagemaker:DescribeProcessingJob",
    "sagemaker:StopProcessingJob",
    # Batch transform of a model over an S3 prefix.
    "sagemaker:CreateTransformJob",
    "sagemaker:DescribeTransformJob",
    "sagemaker:StopTransformJob",
    # Hyperparameter tuning (a tuning job starts training jobs as the same role).
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    # Models and real-time endpoints: estimator.deploy(), predictor.predict(), cleanup.
    "sagemaker:CreateModel",
    "sagemaker:DescribeModel",
    "sagemaker:DeleteModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:DescribeEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:DeleteEndpoint",
    "sagemaker:InvokeEndpoint",
    # Experiments: sagemaker.experiments.Run logs parameters and metrics from the desktop
    # and from the jobs (trial components and their metrics).
    "sagemaker:CreateExperiment",
    "sagemaker:DescribeExperiment",
    "sagemaker:DeleteExperiment",
    "sagemaker:CreateTrial",
    "sagemaker:DescribeTrial",
    "sagemaker:DeleteTrial",
    "sagemaker:CreateTrialComponent",
    "sagemaker:DescribeTrialComponent",
    "sagemaker:UpdateTrialComponent",
    "sagemaker:DeleteTrialComponent",
    "sagemaker:AssociateTrialComponent",
    "sagemaker:DisassociateTrialComponent",
    "sagemaker:BatchPutMetrics",
    "sagemaker:BatchGetMetrics",
    # Tags on create (the defaults file tags every job with the desktop's name): SageMaker
    # authorizes the Tags of a Create* call as AddTags; ListTags reads them back.
    "sagemaker:AddTags",
    "sagemaker:ListTags",
)

# Listing and searching take no resource (IAM's "*" only): the SDK's waiters, `aws sagemaker
# list-training-jobs`, the experiments' search, the tags of a job.
LIST_ACTIONS = (
    "sagemaker:ListTrainingJobs",
    "sagemaker:ListProcessingJobs",
    "sagemaker:ListTransformJobs",
    "sagemaker:ListHyperParameterTuningJobs",
    "sagemaker:ListModels",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListEndpoints",
    "sagemaker:ListExperiments",
    "sagemaker:ListTrials",
    "sagemaker:ListTrialComponents",
    "sagemaker:Search",
)

# Pulling a job's image: AWS's Deep Learning Containers and this account's repositories.
# SageMaker pulls with the job's role, which is this one.
ECR_PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")

# A job's own logs and the person watching them (`aws logs tail /aws/sagemaker/TrainingJobs`),
# only the /aws/sagemaker/ log groups.
LOG_ACTIONS = (
    "logs:CreateLogGroup",  # the job's first run in the region creates /aws/sagemaker/TrainingJobs
    "logs:CreateLogStream",  # one stream per job instance
    "logs:PutLogEvents",  # the job's stdout and stderr
    "logs:DescribeLogStreams",  # the SDK's `logs=True` finds the job's streams
    "logs:GetLogEvents",  # ... and reads them
    "logs:FilterLogEvents",  # `aws logs tail`
)

# VPC mode: SageMaker puts the job's network interfaces in the desktop's subnet with the
# desktop's group, as the job's role (SageMaker's documented CreateTrainingJob/VpcConfig
# permissions): interfaces, subnets and groups of this account and region.
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)
# EC2 takes no resource for the Describe calls, nor FSx for describing file systems (which a
# job reading the desktop's FSx for Lustre makes).
VPC_ACTIONS = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "fsx:DescribeFileSystems",
)
# A job reading the desktop's EFS (FileSystemInput) looks it up: the file systems of this
# account and region.
FILE_SYSTEM_ACTIONS = (
    "elasticfilesystem:DescribeFileSystems",
    "elasticfilesystem:DescribeMountTargets",
)


def scoped_policy(partition: str, region: str, account: str, role_arn: str) -> dict:
    """The policy of ``sagemakerAccess: scoped`` for the role ``role_arn`` of ``account``."""
    here = f"{partition}:sagemaker:{region}:{account}"
    logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "JobsModelsEndpointsExperiments", "Effect": "Allow", "Action": list(JOB_ACTIONS),
             "Resource": f"arn:{here}:*"},
            {"Sid": "ListAndSearch", "Effect": "Allow", "Action": list(LIST_ACTIONS), "Resource": "*"},
            # The one role a job may run as: this one, and only to SageMaker.
            {"Sid": "PassOwnRoleToSageMaker", "Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn,
             "Condition": {"StringEquals": {"iam:PassedToService": SAGEMAKER_PRINCIPAL}}},
            # The registry login takes no resource; what it opens is the next statement's.
            {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "PullImages", "Effect": "Allow", "Action": list(ECR_PULL_ACTIONS), "Resource": [
                f"arn:{partition}:ecr:*:{DLC_ACCOUNT.get(partition, DLC_ACCOUNT['aws'])}:repository/*",
                f"arn:{partition}:ecr:{region}:{account}:repository/*",
            ]},
            {"Sid": "SageMakerLogs", "Effect": "Allow", "Action": list(LOG_ACTIONS), "Resource": logs},
            # The job's metrics (SageMaker's /aws/sagemaker/... namespaces) and nothing else.
            {"Sid": "SageMakerMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}},
            {"Sid": "VpcModeInterfaces", "Effect": "Allow", "Action": list(ENI_ACTIONS),
             "Resource": f"arn:{partition}:ec2:{region}:{account}:*"},
            {"Sid": "VpcModeDescribe", "Effect": "Allow", "Action": list(VPC_ACTIONS), "Resource": "*"},
            {"Sid": "FileSystems", "Effect": "Allow", "Action": list(FILE_SYSTEM_ACTIONS),
             "Resource": f"arn:{partition}:elasticfilesystem:{region}:{account}:file-system/*"},
        ],
    }
