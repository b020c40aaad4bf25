# Image for docker-compose.yml (web, worker and beat share it). It serves the bakery only: the runtime
# lock (requirements.txt: no test tools, no embedded engines; compose's PostgreSQL and Valkey
# containers are the engines), as wheels, on a slim base. Its wheels exist for linux/amd64 and
# linux/arm64 alike (tests/test_wheels.py).
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements.txt .
RUN pip install --require-hashes --only-binary=:all: -r requirements.txt
COPY . .
# collectstatic needs settings, not secrets: the key it makes lands in a folder that is then removed.
RUN BAKERY_DATA_DIR=/tmp/build DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput && rm -rf /tmp/build
RUN useradd --create-home bakery && chown -R bakery /app
USER bakery
EXPOSE 8000
