# One image for every role; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY seamwatch seamwatch
COPY storage storage
COPY collector collector
COPY dashboard dashboard
COPY detectors detectors
COPY lineage lineage
COPY sample_data sample_data
COPY notify notify
RUN pip install --no-cache-dir .
# The embedded store, or with a ClickHouse server the collector's spool of acknowledged spans.
ENV SEAMWATCH_DATA_DIR=/data
EXPOSE 4317 4318 8501
ENTRYPOINT ["seamwatch"]
