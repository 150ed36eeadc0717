# One image for every campaignflow service (workers, beat, Flower, the migrate job).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/campaignflow --create-home campaignflow \
    && chown -R campaignflow /var/lib/campaignflow

USER campaignflow
# The embedded default (used only when no CAMPAIGNFLOW_BROKER_URL is set) keeps its SQLite file here.
ENV CAMPAIGNFLOW_DATA_DIR=/var/lib/campaignflow/data
CMD ["campaignflow", "--help"]
