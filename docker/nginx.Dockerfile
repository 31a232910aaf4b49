# nginx from Debian's package, for machines that cannot pull the official nginx image:
#   docker build -t local/nginx - < docker/nginx.Dockerfile    (it needs no build context)
#   NGINX_IMAGE=local/nginx docker compose --profile scale up --scale simlink-replica=2 nginx
# docker-compose.yml mounts docker/nginx.conf over /etc/nginx/nginx.conf either way.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
