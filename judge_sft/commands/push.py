"""`judge-sft push DIR --repo-id ORG/NAME`: upload an output or checkpoint directory with its model card."""

from pathlib import Path

from judge_sft.hub.card import write_model_card
from judge_sft.hub.upload import check_pushable, prepare_repo, push_folder


def add_arguments(parser):
    parser.add_argument("path", type=Path, help="an output directory of a run, or one of its checkpoint-N folders")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME (or NAME, under your own account)")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument(
        "--private",
        dest="private",
        action="store_true",
        default=True,
        help="create the repo private (the default; an existing repo keeps its visibility)",
    )
    visibility.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    parser.add_argument("--revision", help="push to this branch (created from main when missing)")
    parser.add_argument("--message", default="Upload judge model", help="commit message (default: %(default)s)")


def main(args):
    # Nothing local changes until the repo id is valid and the Hub has the repo: a failed push leaves DIR as it was.
    check_pushable(args.path)
    repo_id = prepare_repo(args.repo_id, private=args.private, revision=args.revision)
    write_model_card(args.path, repo_id)
    commit = push_folder(args.path, repo_id, revision=args.revision, commit_message=args.message)
    print(f"pushed {args.path} to {commit.commit_url}")
    return 0
