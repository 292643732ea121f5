# Loads a Vagrantfile with a stand-in for Vagrant that records what it configures, and
# prints that as JSON on stdout: {"box", "synced_folders", "machines": {NAME: {"primary",
# "hostname", "providers": {PROVIDER: {SETTING: VALUE}}, "networks", "provisioners"}}}.
# `vagrant validate --ignore-provider` skips the provider blocks; this reads them.
# Rules: only the calls the lab's Vagrantfile makes exist here; anything else (a typo, a
# setting read instead of set) raises NoMethodError, so the probe fails with the file.
# Usage: ruby vagrantfile_probe.rb VAGRANTFILE
require "json"

# A provider block's settings: assignments only.
class ProviderSettings
  attr_reader :values

  def initialize
    @values = {}
  end

  def method_missing(name, *args)
    return super unless name.end_with?("=") && args.size == 1

    @values[name.to_s.chomp("=")] = args.first
  end

  def respond_to_missing?(name, include_private = false)
    name.end_with?("=") || super
  end
end

# config.vm of a Vagrantfile, or of one machine in it.
class VmSettings
  attr_accessor :box, :hostname
  attr_reader :machines

  def initialize
    @synced_folders = []
    @networks = []
    @provisioners = []
    @providers = {}
    @machines = {}
  end

  def synced_folder(source, target, **options)
    @synced_folders << { "source" => source, "target" => target, **strings(options) }
  end

  def network(kind, **options)
    @networks << { "kind" => kind.to_s, **strings(options) }
  end

  def provision(kind, **options)
    @provisioners << { "kind" => kind.to_s, **strings(options) }
  end

  def provider(name)
    yield(@providers[name.to_s] ||= ProviderSettings.new)
  end

  def define(name, primary: false)
    machine = Settings.new
    yield machine
    @machines[name.to_s] = machine.vm.to_h.merge("primary" => primary)
  end

  def to_h
    {
      "box" => box, "hostname" => hostname, "synced_folders" => @synced_folders, "networks" => @networks,
      "provisioners" => @provisioners, "providers" => @providers.transform_values(&:values),
      "machines" => @machines
    }
  end

  private

  def strings(options)
    options.to_h { |key, value| [key.to_s, value] }
  end
end

# The object Vagrant.configure yields.
class Settings
  attr_reader :vm

  def initialize
    @vm = VmSettings.new
  end
end

# The stand-in: Vagrant.configure("2") only.
module Vagrant
  def self.configure(version)
    raise ArgumentError, "configuration version #{version}, not 2" unless version == "2"

    settings = Settings.new
    yield settings
    puts JSON.generate(settings.vm.to_h)
  end
end

load ARGV.fetch(0)
