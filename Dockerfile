# Image for docker-compose.yml (web, worker and beat share it).
FROM python:3.11
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# collectstatic needs settings, not secrets: the key it makes lands in a folder that is then removed.
RUN BAKERY_DATA_DIR=/tmp/build DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput && rm -rf /tmp/build
RUN useradd --create-home bakery && chown -R bakery /app
USER bakery
EXPOSE 8000
